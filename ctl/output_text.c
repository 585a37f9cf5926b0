/*
 * output_text.c — aligned tables and key/value blocks.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "output.h"

static unsigned rows;

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
	printf("%-12s %" PRIu64 " connections (%" PRIu64 " total), %s "
	    "received, %" PRIu64 " digests sent\n", "Server:", st->connections,
	    st->connections_total, human_bytes(st->bytes_received, b1,
	    sizeof(b1)), st->digests_sent);
	printf("%-12s %" PRIu64 " running, %s sent, %" PRIu64 " digests "
	    "received, %" PRIu64 " verified, %" PRIu64 " mismatched\n",
	    "Producers:", st->producers_running, human_bytes(st->bytes_sent,
	    b2, sizeof(b2)), st->digests_received, st->digests_verified,
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
	char b1[32], b2[32], b3[32];

	if (a == ACT_SHOW) {
		printf("%-20s %" PRIu64 "\n", "ID:", s->id);
		printf("%-20s %s\n", "Role:", stream_role_name(s->role));
		printf("%-20s %s\n", "Name:", s->name[0] ? s->name : "-");
		printf("%-20s %s\n", "Peer:", s->peer);
		printf("%-20s %s\n", "Mode:", wsflow_mode_name(s->mode));
		printf("%-20s %s\n", "State:", s->state);
		printf("%-20s %s\n", "Age:", human_secs(s->age_sec, b1,
		    sizeof(b1)));
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
		printf("%-20s %s/s now, %s/s average\n", "Rate:",
		    human_bytes(s->bytes_per_sec, b1, sizeof(b1)),
		    human_bytes(s->avg_bytes_per_sec, b2, sizeof(b2)));
		printf("%-20s %" PRIu64 " pauses, %.3f s paused\n",
		    "Backpressure:", s->backpressure_pauses,
		    s->backpressure_usec / 1e6);
		if (s->role != ROLE_SERVER)
			printf("%-20s %.3f ms last, %.3f ms max\n",
			    "Digest latency:", s->latency_last_us / 1e3,
			    s->latency_max_us / 1e3);
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
		printf("%-6s %-8s %-16s %-9s %-9s %10s %9s %9s %8s %11s  %s\n",
		    "ID", "ROLE", "NAME", "MODE", "STATE", "BYTES", "DIGESTS",
		    "VERIFIED", "MISMATCH", "RATE", "PEER");
	printf("%-6" PRIu64 " %-8s %-16.16s %-9s %-9s %10s %9" PRIu64 " %9"
	    PRIu64 " %8" PRIu64 " %9s/s  %s\n", s->id, stream_role_name(s->role),
	    s->name[0] ? s->name : "-", wsflow_mode_name(s->mode), s->state,
	    human_bytes(s->bytes, b1, sizeof(b1)), s->digests,
	    s->digests_verified, s->digest_mismatches,
	    human_bytes(s->bytes_per_sec, b2, sizeof(b2)), s->peer);
	(void)b3;
}

static void
text_result(enum action a, const struct ctl_result *r)
{
	(void)a;
	if (r->code == CTL_OK) {
		if (a == ACT_START)
			printf("%" PRIu64 "\n", r->id);
		else
			printf("%s\n", r->message);
	} else
		fprintf(stderr, "wsflowctl: %s\n", r->message[0] ?
		    r->message : ctl_result_str(r->code));
}

static void
text_error(const char *msg)
{
	fprintf(stderr, "wsflowctl: %s\n", msg);
}

static void
text_tail(enum action a)
{
	if ((a == ACT_STREAMS || a == ACT_DIGESTS) && rows == 0)
		printf("no streams\n");
}

static void
text_commands(void)
{
	print_commands(stdout);
}

const struct output text_output = {
	.head = text_head,
	.status = text_status,
	.listener = text_listener,
	.stream = text_stream,
	.result = text_result,
	.error = text_error,
	.tail = text_tail,
	.commands = text_commands,
};
