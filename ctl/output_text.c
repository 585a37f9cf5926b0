/*
 * output_text.c — aligned tables and key/value blocks.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "output.h"
#include "version.h"

/* streams: the columns before PEER fit 80; PEER is cut to keep 100. */
#define ROW_MAX		100

static unsigned rows;
int text_bits;

static const char *
plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

/* At most 6 columns, never more: 999, 1.2k, 999.9k, 12.3M (decimal). */
static const char *
compact(uint64_t v, char *buf, size_t len)
{
	static const char unit[] = "kMGTPE";
	double d = (double)v;
	int u = -1;

	if (v < 1000) {
		snprintf(buf, len, "%" PRIu64, v);
		return buf;
	}
	while (d >= 999.95 && u < 5) {
		d /= 1000;
		u++;
	}
	snprintf(buf, len, "%.1f%c", d, unit[u]);
	return buf;
}

/* Cut in the middle, so that scheme and host and path's end all show. */
static const char *
fit(const char *s, int width, char *buf, size_t len)
{
	int n = (int)strlen(s), head;

	if (width < 5)
		width = 5;
	if (n <= width || (size_t)width >= len)
		return s;
	head = (width - 1) / 2;
	snprintf(buf, len, "%.*s~%s", head, s, s + n - (width - 1 - head));
	return buf;
}

static const char *
human_bytes(uint64_t v, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "kB", "MB", "GB", "TB",
	    "PB", "EB" };
	double d = (double)v;
	int u = 0;

	while (d >= 1000 && u < 6) {
		d /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", v);
	else
		snprintf(buf, len, "%.1f %s", d, unit[u]);
	return buf;
}

/* A rate for people: 350.2 MB/s, or with bits 2.8 Gbit/s. */
static const char *
human_rate(uint64_t v, int bits, char *buf, size_t len)
{
	static const char *const unit[] = { "", "k", "M", "G", "T", "P",
	    "E" };
	double d = bits ? (double)v * 8 : (double)v;
	int u = 0;

	while (d >= 1000 && u < 6) {
		d /= 1000;
		u++;
	}
	snprintf(buf, len, u == 0 ? "%.0f %s%s" : "%.1f %s%s", d, unit[u],
	    bits ? "bit/s" : "B/s");
	return buf;
}

static const char *
human_secs(uint64_t s, char *buf, size_t len)
{
	if (s >= 86400)
		snprintf(buf, len, "%" PRIu64 "d %02" PRIu64 "h %02" PRIu64
		    "m", s / 86400, s / 3600 % 24, s / 60 % 60);
	else if (s >= 3600)
		snprintf(buf, len, "%" PRIu64 "h %02" PRIu64 "m %02" PRIu64
		    "s", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, len, "%" PRIu64 "m %02" PRIu64 "s", s / 60,
		    s % 60);
	return buf;
}

/*
 * The streams table, for streams and watch.  Fixed widths that fit every
 * value: the longest state (connecting) and mode (streaming), counts of 6
 * columns at most.  Only an id past six digits (a million streams on)
 * pushes its row right, and even that row ends by ROW_MAX: PEER gives
 * way.  bits: RATE in bit/s, one column wider (PEER still starts by 80).
 */
static void
table_header(FILE *f, int bits)
{
	fprintf(f, "%-6s %-8s %-10s %-9s %-10s %6s %*s %7s %6s %s\n",
	    "ID", "ROLE", "NAME", "MODE", "STATE", "BYTES", bits ? 9 : 8,
	    "RATE", "DIGESTS", "BAD", "PEER");
}

static void
table_row(FILE *f, const struct ctl_stream *s, int bits)
{
	char b1[32], b2[32], b3[32], d1[24], d2[24], peer[ROW_MAX + 1];
	uint64_t rate = s->ended ? s->avg_bytes_per_sec : s->bytes_per_sec;
	int n;

	if (s->id == 0)		/* configured, not running */
		snprintf(d1, sizeof(d1), "-");
	else
		snprintf(d1, sizeof(d1), "%" PRIu64, s->id);
	n = fprintf(f, "%-6s %-8s %-10s %-9s %-10.10s %6s %6s%s ", d1,
	    stream_role_name(s->role), fit(s->name[0] ? s->name : "-",
	    10, b3, sizeof(b3)), wsflow_mode_name(s->mode), s->state,
	    compact(s->bytes, b1, sizeof(b1)), compact(bits ? rate * 8 : rate,
	    b2, sizeof(b2)), bits ? "b/s" : "/s");
	n += fprintf(f, "%7s ", compact(s->digests, d1, sizeof(d1)));
	n += fprintf(f, "%6s ", compact(s->digest_mismatches, d2, sizeof(d2)));
	fprintf(f, "%s\n", fit(s->peer, ROW_MAX - n, peer, sizeof(peer)));
}

static void
text_head(enum action a)
{
	rows = 0;
	(void)a;
}

static void
text_status(const struct ctl_status *st)
{
	char b1[32], b2[32];

	printf("%-12s %s\n", "Version:", st->version);
	printf("%-12s %u\n", "PID:", st->pid);
	printf("%-12s %s\n", "Uptime:", human_secs(st->uptime_sec, b1,
	    sizeof(b1)));
	printf("%-12s %s\n", "Config:", st->conf_path);
	printf("%-12s %s, batch %" PRIu64 " octets\n", "Digest:", st->digest,
	    st->batch_size);
	printf("%-12s %" PRIu64 "\n", "Streams:", st->streams);
	printf("%-12s %" PRIu64 " connection%s (%" PRIu64 " total), %s "
	    "received, %" PRIu64 " digest%s sent\n", "Server:",
	    st->connections, plural(st->connections), st->connections_total,
	    human_bytes(st->bytes_received, b1, sizeof(b1)), st->digests_sent,
	    plural(st->digests_sent));
	printf("%-12s %" PRIu64 " running, %s sent, %" PRIu64 " digest%s "
	    "received, %" PRIu64 " verified, %" PRIu64 " mismatched\n",
	    "Producers:", st->producers_running, human_bytes(st->bytes_sent,
	    b2, sizeof(b2)), st->digests_received,
	    plural(st->digests_received), st->digests_verified,
	    st->digest_mismatches);
}

static void
text_listener(const struct ctl_listener *l)
{
	printf("%-12s %s%s%s:%d (%s)\n", rows++ == 0 ? "Listening:" : "",
	    strchr(l->address, ':') ? "[" : "", l->address,
	    strchr(l->address, ':') ? "]" : "", l->port, l->tls ? "wss" : "ws");
}

static void
text_stream(enum action a, const struct ctl_stream *s)
{
	char b1[32], b2[32];

	if (a == ACT_SHOW) {
		printf("%-20s %" PRIu64 "\n", "ID:", s->id);
		printf("%-20s %s\n", "Role:", stream_role_name(s->role));
		printf("%-20s %s\n", "Name:", s->name[0] ? s->name : "-");
		printf("%-20s %s\n", "Peer:", s->peer);
		if (s->role == ROLE_PRODUCER && s->local_port != 0)
			printf("%-20s %u\n", "Local port:", s->local_port);
		printf("%-20s %s\n", "Mode:", wsflow_mode_name(s->mode));
		if (s->link_id != 0)
			printf("%-20s stream %" PRIu64 " of this daemon\n",
			    s->role == ROLE_PRODUCER ? "Receiver:" : "Sender:",
			    s->link_id);
		printf("%-20s %s\n", "State:", s->state);
		if (s->ended) {
			printf("%-20s %s\n", "End reason:", s->end_reason);
			printf("%-20s %s\n", "Error:", s->error[0] ?
			    s->error : "-");
		}
		printf("%-20s %s\n", s->ended ? "Ran for:" : "Age:",
		    human_secs(s->age_sec, b1, sizeof(b1)));
		printf("%-20s %" PRIu64 " (%s)\n", "Bytes:", s->bytes,
		    human_bytes(s->bytes, b1, sizeof(b1)));
		printf("%-20s %" PRIu64 "\n", "Messages:", s->messages);
		printf("%-20s %" PRIu64 "\n", s->role == ROLE_SERVER ? "Digests sent:" :
		    "Digests received:", s->digests);
		if (s->role != ROLE_SERVER) {
			printf("%-20s %" PRIu64 "\n", "Digests verified:",
			    s->digests_verified);
			printf("%-20s %" PRIu64 "\n", "Digest mismatches:",
			    s->digest_mismatches);
		}
		printf("%-20s %s now, %s average\n", "Rate:",
		    human_rate(s->bytes_per_sec, text_bits, b1, sizeof(b1)),
		    human_rate(s->avg_bytes_per_sec, text_bits, b2,
		    sizeof(b2)));
		printf("%-20s %" PRIu64 " pause%s, %.3f s paused\n",
		    "Backpressure:", s->backpressure_pauses,
		    plural(s->backpressure_pauses), s->backpressure_usec / 1e6);
		if (s->role != ROLE_SERVER) {
			struct hist_snap h;

			stream_latency(s, &h);
			printf("%-20s p50 %.3f, p90 %.3f, p99 %.3f, max %.3f ms "
			    "(%.3f last)\n", "Digest latency:",
			    hist_quantile(&h, 0.5) / 1e3,
			    hist_quantile(&h, 0.9) / 1e3,
			    hist_quantile(&h, 0.99) / 1e3, h.max_us / 1e3,
			    s->latency_last_us / 1e3);
			printf("%-20s tcp %.3f, tls %.3f, upgrade %.3f ms\n",
			    "Connect:", s->connect_tcp_us / 1e3,
			    s->connect_tls_us / 1e3,
			    s->connect_upgrade_us / 1e3);
		}
		printf("%-20s %s\n", "Last digest:", s->last_digest[0] ?
		    s->last_digest : "-");
		if (s->role != ROLE_SERVER) {
			printf("%-20s %s\n", "Error:", s->error[0] ?
			    s->error : "-");
			printf("%-20s %" PRIu64 "\n", "Reconnects:",
			    s->reconnects);
			if (s->next_attempt_in_ms >= 0)
				printf("%-20s in %.1f s\n", "Next attempt:",
				    s->next_attempt_in_ms / 1e3);
		}
		return;
	}
	if (a == ACT_DIGESTS) {
		if (rows++ == 0)
			printf("%-6s %-16s %-8s %10s %10s %10s %10s  %s\n",
			    "ID", "NAME", "ROLE", "SENT", "RECEIVED",
			    "VERIFIED", "MISMATCH", "LAST DIGEST");
		printf("%-6" PRIu64 " %-16.16s %-8s %10" PRIu64 " %10" PRIu64
		    " %10" PRIu64 " %10" PRIu64 "  %.16s%s\n", s->id,
		    s->name[0] ? s->name : "-", stream_role_name(s->role),
		    s->role == ROLE_SERVER ? s->digests : 0,
		    s->role == ROLE_SERVER ? 0 : s->digests, s->digests_verified,
		    s->digest_mismatches, s->last_digest[0] ? s->last_digest :
		    "-", s->last_digest[0] ? "..." : "");
		return;
	}
	if (rows++ == 0)
		table_header(stdout, text_bits);
	table_row(stdout, s, text_bits);
}

static void
text_result(enum action a, const struct ctl_result *r, int status)
{
	(void)status;
	if (r->code != CTL_OK)
		fprintf(stderr, "wsflowctl: %s\n", r->message[0] ?
		    r->message : ctl_result_str(r->code));
	else if (a == ACT_START && r->count > 1)	/* an entry's parallel */
		printf("started producer %" PRIu64 " %s (streams %" PRIu64
		    " to %" PRIu64 ")\n", r->id, r->message, r->id, r->id +
		    r->count - 1);
	else if (a == ACT_START)	/* the message is the name */
		printf("started producer %" PRIu64 " %s\n", r->id, r->message);
	else
		printf("%s\n", r->message);
}

static void
text_error(const char *msg, int status)
{
	(void)status;
	fprintf(stderr, "wsflowctl: %s\n", msg);
}

static void
text_tail(enum action a)
{
	if ((a == ACT_STREAMS || a == ACT_DIGESTS) && rows == 0)
		printf("no streams\n");
}

static void
text_help(void)
{
	print_usage(stdout);
}

static void
text_version(void)
{
	printf("wsflowctl %s\n", WSFLOW_VERSION);
}

/* ", 350.2 MB/s": a total's rate since the last refresh, if known. */
static const char *
total_rate(uint64_t now, uint64_t before, const struct snapshot *sn,
    char *buf, size_t len)
{
	char r[32];

	buf[0] = '\0';
	if (sn->prev != NULL && sn->elapsed > 0 && now >= before)
		snprintf(buf, len, ", %s", human_rate((uint64_t)((now -
		    before) / sn->elapsed), sn->bits, r, sizeof(r)));
	return buf;
}

/* watch: the time and totals above the streams table, top-like. */
static void
text_snapshot(FILE *f, const struct snapshot *sn)
{
	const struct ctl_status *st = sn->status, *p = sn->prev;
	char when[32], b1[32], b2[48];
	time_t t = (time_t)sn->time;
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(when, sizeof(when), "%.0f", sn->time);
	fprintf(f, "%s  wsflowd %s, pid %u, up %s, %" PRIu64 " stream%s\n",
	    when, st->version, st->pid, human_secs(st->uptime_sec, b1,
	    sizeof(b1)), st->streams, plural(st->streams));
	fprintf(f, "%-11s %" PRIu64 " connection%s (%" PRIu64 " total), %s "
	    "received%s, %" PRIu64 " digest%s sent\n", "Server:",
	    st->connections, plural(st->connections), st->connections_total,
	    human_bytes(st->bytes_received, b1, sizeof(b1)),
	    total_rate(st->bytes_received, p ? p->bytes_received : 0, sn, b2,
	    sizeof(b2)), st->digests_sent, plural(st->digests_sent));
	fprintf(f, "%-11s %" PRIu64 " running, %s sent%s, %" PRIu64
	    " verified, %" PRIu64 " mismatched\n\n", "Producers:",
	    st->producers_running, human_bytes(st->bytes_sent, b1, sizeof(b1)),
	    total_rate(st->bytes_sent, p ? p->bytes_sent : 0, sn, b2,
	    sizeof(b2)), st->digests_verified, st->digest_mismatches);
	if (sn->nstreams == 0)
		fprintf(f, "no streams\n");
	else
		table_header(f, sn->bits);
	for (size_t i = 0; i < sn->nstreams; i++)
		table_row(f, &sn->streams[i], sn->bits);
}

const struct output text_output = {
	.head = text_head,
	.status = text_status,
	.listener = text_listener,
	.stream = text_stream,
	.result = text_result,
	.error = text_error,
	.tail = text_tail,
	.help = text_help,
	.version = text_version,
	.snapshot = text_snapshot,
};
