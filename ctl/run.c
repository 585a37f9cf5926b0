/*
 * run.c — wsflowctl run: a bounded test, like iperf3.  The daemon runs
 * the producers (they show in streams, the journal, /metrics); this only
 * starts them, follows them every interval and sums them up at the end.
 *
 * Exit 0 only when every stream reached its limit with every digest
 * verified; Ctrl-C stops them and still prints the summary.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "client.h"
#include "hist.h"
#include "output.h"
#include "run.h"

#define STOP_WAIT_S	15	/* after Ctrl-C: for the streams to end */
#define PER_STREAM_MAX	4	/* text: a line each up to this many */
#define POLL_S		0.1	/* looked at this often (the history is
				   bounded: read each end before it goes) */
#define RX_WAIT_S	5	/* after the last end: for the receivers' */
#define RX_WAIT_INTR_S	1	/* the same after Ctrl-C */

struct run_stream {
	uint64_t	 id;
	char		 name[CTL_NAME_MAX];
	struct ctl_stream last;		/* as last seen */
	uint64_t	 prev_bytes, prev_verified, prev_mismatches;
	uint64_t	 prev_rx_id, prev_rx_bytes;	/* at the last report */
	bool		 seen, ended;
	/* Its receiver when the server is a listener of this daemon: the
	 * server stream last.link_id, as last seen (the figures run uses,
	 * not a whole ctl_stream: --parallel may be 100000). */
	struct rx_fig {
		uint64_t id, bytes, messages, digests, bp_pauses, bp_usec;
		uint64_t run_usec, age_sec;
		bool	 ended;
		char	 state[16];
	}		 rx;
	bool		 rx_seen;
	/* The receiver its current connection has: last.link_id, or with
	 * --receiver the other wsflowd's server stream that names this
	 * connection's port as its peer's (0: none known). */
	uint64_t	 rx_want;
};

struct run {
	struct ctl_client c;
	const struct output *out;
	bool		 json;
	struct run_stream *s;
	unsigned	 n;
	double		 t0;		/* monotonic, after the starts */
	double		 prev_t;
	int		 status;	/* a reply's failure: exit status */
	unsigned	 lost;		/* gone from the history unseen */
	const char	*rx_sock;	/* --receiver: the server's wsflowd */
	uint64_t	 rx_base;	/* its newest stream before the run */
	char		 rx_why[CTL_TEXT_MAX + 32];	/* why not asked */
	char		 why[CTL_TEXT_MAX + 32];
};

static volatile sig_atomic_t interrupted;

static void
on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
nap(double s)
{
	struct timespec ts;

	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	(void)nanosleep(&ts, NULL);	/* EINTR: Ctrl-C, looked at next */
}

static const char *
mib(double v, char *buf, size_t len)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.2f %s" : "%.0f %s", v, unit[u]);
	return buf;
}

/*
 * A rate for the tables: 12.34 MiB/s, or with --bits as iperf3 says it,
 * decimal, 103.51 Mbit/s (eight times the octets).  JSON keeps octets.
 */
static const char *
rate(double v, char *buf, size_t len)
{
	static const char *unit[] = { "bit/s", "kbit/s", "Mbit/s", "Gbit/s",
	    "Tbit/s" };
	char b[24];
	unsigned u = 0;

	if (!text_bits) {
		snprintf(buf, len, "%s/s", mib(v, b, sizeof(b)));
		return buf;
	}
	v *= 8;
	while (v >= 1000 && u < 4) {
		v /= 1000;
		u++;
	}
	snprintf(buf, len, u ? "%.2f %s" : "%.0f %s", v, unit[u]);
	return buf;
}

static void
emit(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(stdout);
	json_object_put(o);
}

/* One request, one RESULT: its code's exit status; r filled. */
static int
request_result(struct run *r, unsigned type, const void *p, size_t len,
    struct ctl_result *res)
{
	union ctl_reply u;
	int t, st;

	if (ctl_client_request(&r->c, type, p, len) == -1) {
		snprintf(r->why, sizeof(r->why), "send: %s", strerror(errno));
		return r->status = EXIT_NODAEMON;
	}
	while ((t = ctl_client_reply(&r->c, &u, r->why, sizeof(r->why),
	    &st)) != CTL_REP_RESULT)
		if (t == -1)
			return r->status = st;
	*res = u.r;
	if (u.r.code != CTL_OK)
		snprintf(r->why, sizeof(r->why), "%s", u.r.message);
	return ctl_result_status(u.r.code);
}

static int
by_id_sort(const void *a, const void *b)
{
	const struct run_stream *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int
by_id(const void *key, const void *elem)
{
	uint64_t id = *(const uint64_t *)key;
	const struct run_stream *rs = elem;

	return id < rs->id ? -1 : id > rs->id;
}

/*
 * A server stream of the listing whose sender is a stream of this daemon:
 * a run stream's receiver?  (rx_of then checks that it is its current
 * connection's.)  After a reconnect the newest connection's, the highest
 * id, wins over the ended ones the history lists later.
 */
static void
rx_fill(struct run_stream *rs, const struct ctl_stream *s)
{
	rs->rx.id = s->id;
	rs->rx.bytes = s->bytes;
	rs->rx.messages = s->messages;
	rs->rx.digests = s->digests;
	rs->rx.bp_pauses = s->backpressure_pauses;
	rs->rx.bp_usec = s->backpressure_usec;
	rs->rx.run_usec = s->run_usec;
	rs->rx.age_sec = s->age_sec;
	rs->rx.ended = s->ended != 0;
	memcpy(rs->rx.state, s->state, sizeof(rs->rx.state));
	rs->rx.state[sizeof(rs->rx.state) - 1] = '\0';
	rs->rx_seen = true;
}

static void
rx_take(struct run *r, const struct ctl_stream *s)
{
	struct run_stream *rs;

	if ((rs = bsearch(&s->link_id, r->s, r->n, sizeof(*r->s),
	    by_id)) == NULL || (rs->rx_seen && rs->rx.id > s->id))
		return;
	rx_fill(rs, s);
}

/*
 * Every stream's figures now, live or ended, in one request.  One that
 * is in neither list has left the daemon's history (server.history) in
 * the meantime: ended, its last figures the ones seen.  Their receivers
 * too, when they are streams of this daemon (they name their sender).
 */
static int
fetch_all(struct run *r)
{
	struct ctl_key k;
	union ctl_reply u;
	int st;

	memset(&k, 0, sizeof(k));
	if (ctl_client_request(&r->c, CTL_REQ_STREAMS_ALL, &k, sizeof(k)) ==
	    -1) {
		snprintf(r->why, sizeof(r->why), "send: %s", strerror(errno));
		return r->status = EXIT_NODAEMON;
	}
	for (unsigned i = 0; i < r->n; i++)
		r->s[i].seen = false;
	for (;;) {
		struct run_stream *rs;

		switch (ctl_client_reply(&r->c, &u, r->why, sizeof(r->why),
		    &st)) {
		case -1:
			return r->status = st;
		case CTL_REP_STREAM:
			if (u.s.id != 0 && u.s.role == ROLE_SERVER &&
			    u.s.link_id != 0) {
				if (r->rx_sock == NULL)
					rx_take(r, &u.s);
				break;
			}
			if (u.s.id == 0 || u.s.role != ROLE_PRODUCER ||
			    (rs = bsearch(&u.s.id, r->s, r->n, sizeof(*r->s),
			    by_id)) == NULL)
				break;
			rs->last = u.s;
			if (r->rx_sock == NULL)
				rs->rx_want = u.s.link_id;
			rs->seen = true;
			rs->ended = u.s.ended != 0;
			break;
		case CTL_REP_END:
			for (unsigned i = 0; i < r->n; i++)
				if (!r->s[i].seen && !r->s[i].ended) {
					r->s[i].ended = true;
					r->lost++;
				}
			return 0;
		case CTL_REP_RESULT:
			snprintf(r->why, sizeof(r->why), "%s", u.r.message);
			return r->status = ctl_result_status(u.r.code);
		default:
			break;
		}
	}
}

/* A server stream's peer port: "127.0.0.1:PORT", "[::1]:PORT". */
static unsigned
peer_port(const char *peer)
{
	const char *c = strrchr(peer, ':');
	char *end;
	unsigned long v;

	if (c == NULL)
		return 0;
	v = strtoul(c + 1, &end, 10);
	return *end == '\0' && v > 0 && v < 65536 ? (unsigned)v : 0;
}

struct port_ix {
	unsigned	 port;
	unsigned	 i;
};

static int
by_port(const void *a, const void *b)
{
	const struct port_ix *x = a, *y = b;

	return x->port < y->port ? -1 : x->port > y->port;
}

/*
 * --receiver: the server is another wsflowd of this host.  Its server
 * streams newer than the run (ids above rx_base) whose peer port is a
 * run stream's own port are their receivers; after a reconnect the
 * newest.  With base set, only the newest id there is taken (before the
 * run starts).  A failure says why in rx_why; the run goes on without.
 */
static void
fetch_remote(struct run *r, bool base)
{
	struct ctl_client c;
	struct ctl_key k;
	union ctl_reply u;
	struct port_ix *ix = NULL;
	int st;

	if (r->rx_sock == NULL || r->rx_why[0] != '\0')
		return;
	if (ctl_client_open(&c, r->rx_sock) == -1) {
		snprintf(r->rx_why, sizeof(r->rx_why), "%s: %s", r->rx_sock,
		    strerror(errno));
		return;
	}
	if (!base) {
		if ((ix = calloc(r->n, sizeof(*ix))) == NULL) {
			snprintf(r->rx_why, sizeof(r->rx_why), "out of memory");
			goto out;
		}
		for (unsigned i = 0; i < r->n; i++) {
			ix[i].port = r->s[i].last.local_port;
			ix[i].i = i;
		}
		qsort(ix, r->n, sizeof(*ix), by_port);
	}
	memset(&k, 0, sizeof(k));
	if (ctl_client_request(&c, CTL_REQ_STREAMS_ALL, &k, sizeof(k)) ==
	    -1) {
		snprintf(r->rx_why, sizeof(r->rx_why), "%s: %s", r->rx_sock,
		    strerror(errno));
		goto out;
	}
	for (;;) {
		struct port_ix key, *hit;
		struct run_stream *rs;

		switch (ctl_client_reply(&c, &u, r->rx_why,
		    sizeof(r->rx_why), &st)) {
		case -1:
			goto out;	/* rx_why says it */
		case CTL_REP_STREAM:
			if (base) {
				if (u.s.id > r->rx_base)
					r->rx_base = u.s.id;
				break;
			}
			if (u.s.role != ROLE_SERVER || u.s.id <= r->rx_base ||
			    (key.port = peer_port(u.s.peer)) == 0 ||
			    (hit = bsearch(&key, ix, r->n, sizeof(*ix),
			    by_port)) == NULL)
				break;
			rs = &r->s[hit->i];
			if (rs->rx_seen && rs->rx.id > u.s.id)
				break;
			rs->rx_want = u.s.id;
			rx_fill(rs, &u.s);
			break;
		case CTL_REP_END:
			goto out;
		case CTL_REP_RESULT:
			snprintf(r->rx_why, sizeof(r->rx_why), "%s: %s",
			    r->rx_sock, u.r.message);
			goto out;
		default:
			break;
		}
	}
out:
	free(ix);
	ctl_client_close(&c);
}

static int
start_all(struct run *r, const struct parse_result *res)
{
	const struct ctl_start *base = &res->start;
	char stem[CTL_NAME_MAX];

	/*
	 * A configured producer: one start, the daemon launches the entry's
	 * streams (its parallel, or --parallel) as ids in a row and shares
	 * --bytes out among them itself.
	 */
	if (base->url[0] == '\0') {
		struct ctl_result res_;
		struct run_stream *s;
		unsigned n;
		int rc;

		if ((rc = request_result(r, CTL_REQ_START, base,
		    sizeof(*base), &res_)) != 0)
			return rc;
		n = res_.count > 0 ? res_.count : 1;
		if (n != r->n) {
			if ((s = calloc(n, sizeof(*s))) == NULL) {
				snprintf(r->why, sizeof(r->why), "out of "
				    "memory");
				r->n = 0;
				return EXIT_FAILED;
			}
			free(r->s);
			r->s = s;
			r->n = n;
		}
		for (unsigned i = 0; i < n; i++) {
			r->s[i].id = res_.id + i;
			(void)ctl_strlcpy(r->s[i].name, res_.message,
			    sizeof(r->s[i].name));
		}
		return 0;
	}
	if (base->name[0] != '\0')
		snprintf(stem, sizeof(stem), "%s", base->name);
	else
		snprintf(stem, sizeof(stem), "run-%d", (int)getpid());
	for (unsigned i = 0; i < r->n; i++) {
		struct ctl_start st = *base;
		struct ctl_result res_;
		int rc;

		if (base->url[0] != '\0' && r->n > 1)
			snprintf(st.name, sizeof(st.name), "%.*s.%u",
			    CTL_NAME_MAX - 12, stem, i + 1 > 999999 ? 999999 :
			    i + 1);
		else if (base->url[0] != '\0')
			snprintf(st.name, sizeof(st.name), "%s", stem);
		/* --bytes is the total, as iperf3 -n: shared out. */
		if (base->flags & CTL_START_BYTES)
			st.bytes = base->bytes / r->n +
			    (i < base->bytes % r->n ? 1 : 0);
		if ((rc = request_result(r, CTL_REQ_START, &st, sizeof(st),
		    &res_)) != 0)
			return rc;
		r->s[i].id = res_.id;
		(void)ctl_strlcpy(r->s[i].name, res_.message,
		    sizeof(r->s[i].name));
	}
	return 0;
}

static void
stop_all(struct run *r)
{
	for (unsigned i = 0; i < r->n; i++) {
		struct ctl_key k;
		struct ctl_result res;

		if (r->s[i].id == 0 || r->s[i].ended)
			continue;
		memset(&k, 0, sizeof(k));
		snprintf(k.key, sizeof(k.key), "%" PRIu64, r->s[i].id);
		(void)request_result(r, CTL_REQ_STOP, &k, sizeof(k), &res);
	}
}

static void
say_start(struct run *r, const struct parse_result *res)
{
	const char *target = res->start.url[0] ? res->start.url :
	    res->start.name;

	if (r->json) {
		struct json_object *o = json_object_new_object(),
		    *l = json_object_new_array();

		json_object_object_add(o, "event",
		    json_object_new_string("start"));
		json_object_object_add(o, "target",
		    json_object_new_string(target));
		json_object_object_add(o, "parallel",
		    json_object_new_int64(r->n));
		json_object_object_add(o, "interval",
		    json_object_new_double(res->run.interval));
		for (unsigned i = 0; i < r->n; i++) {
			struct json_object *s = json_object_new_object();

			json_object_object_add(s, "id",
			    json_object_new_int64((int64_t)r->s[i].id));
			json_object_object_add(s, "name",
			    json_object_new_string(r->s[i].name));
			json_object_array_add(l, s);
		}
		json_object_object_add(o, "streams", l);
		emit(o);
		return;
	}
	printf("run: %u stream%s to %s", r->n, r->n == 1 ? "" : "s", target);
	if (res->start.flags & CTL_START_BYTES)
		printf(", %" PRIu64 " octets in all", res->start.bytes);
	if (res->start.flags & CTL_START_DURATION)
		printf(", %" PRIu32 " s at most", res->start.duration);
	printf(" (stream%s %" PRIu64 "%s)\n", r->n == 1 ? "" : "s",
	    r->s[0].id, r->n > 1 ? "..." : "");
	printf("%-7s %-15s %12s %14s %9s %5s\n", "[ ID]", "Interval",
	    "Transfer", "Rate", "Verified", "Bad");
	fflush(stdout);
}

/* rs's receiver as last seen, when it is its current connection's. */
static const struct rx_fig *
rx_of(const struct run_stream *rs)
{
	return rs->rx_want != 0 && rs->rx_seen && rs->rx.id == rs->rx_want ?
	    &rs->rx : NULL;
}

/* Figures since the last report: one line a stream (few), their sum. */
static void
say_interval(struct run *r, double t)
{
	uint64_t bytes = 0, ver = 0, bad = 0, rxbytes = 0;
	unsigned rxknown = 0;
	double from = r->prev_t - r->t0, to = t - r->t0, dt = t - r->prev_t;
	struct json_object *o = NULL, *l = NULL;
	char b1[32], b2[32];

	if (r->json) {
		o = json_object_new_object();
		l = json_object_new_array();
	}
	for (unsigned i = 0; i < r->n; i++) {
		struct run_stream *rs = &r->s[i];
		uint64_t db = rs->last.bytes - rs->prev_bytes;
		uint64_t dv = rs->last.digests_verified - rs->prev_verified;
		uint64_t dm = rs->last.digest_mismatches - rs->prev_mismatches;
		const struct rx_fig *rx = rx_of(rs);
		uint64_t drx = 0;

		/* The receiver's since the last report, as far as seen. */
		if (rx != NULL) {
			uint64_t base = rs->prev_rx_id == rx->id ?
			    rs->prev_rx_bytes : 0;

			drx = rx->bytes > base ? rx->bytes - base : 0;
			rxbytes += drx;
			rxknown++;
			rs->prev_rx_id = rx->id;
			rs->prev_rx_bytes = rx->bytes;
		}
		bytes += db;
		ver += dv;
		bad += dm;
		if (r->json) {
			struct json_object *s = json_object_new_object();

			json_object_object_add(s, "id",
			    json_object_new_int64((int64_t)rs->id));
			json_object_object_add(s, "bytes",
			    json_object_new_int64((int64_t)db));
			json_object_object_add(s, "digests_verified",
			    json_object_new_int64((int64_t)dv));
			json_object_object_add(s, "digest_mismatches",
			    json_object_new_int64((int64_t)dm));
			json_object_object_add(s, "state",
			    json_object_new_string(rs->last.state));
			json_object_object_add(s, "receiver_bytes", rx != NULL ?
			    json_object_new_int64((int64_t)drx) : NULL);
			json_object_array_add(l, s);
		} else if (r->n <= PER_STREAM_MAX)
			printf("[%5" PRIu64 "] %6.2f-%-6.2f s %12s %14s "
			    "%9" PRIu64 " %5" PRIu64 "\n", rs->id, from, to,
			    mib((double)db, b1, sizeof(b1)),
			    rate(dt > 0 ? db / dt : 0, b2, sizeof(b2)), dv, dm);
		rs->prev_bytes = rs->last.bytes;
		rs->prev_verified = rs->last.digests_verified;
		rs->prev_mismatches = rs->last.digest_mismatches;
	}
	if (r->json) {
		json_object_object_add(o, "event",
		    json_object_new_string("interval"));
		json_object_object_add(o, "start", json_object_new_double(from));
		json_object_object_add(o, "end", json_object_new_double(to));
		json_object_object_add(o, "bytes",
		    json_object_new_int64((int64_t)bytes));
		json_object_object_add(o, "bytes_per_sec",
		    json_object_new_int64(dt > 0 ? (int64_t)(bytes / dt) : 0));
		json_object_object_add(o, "digests_verified",
		    json_object_new_int64((int64_t)ver));
		json_object_object_add(o, "digest_mismatches",
		    json_object_new_int64((int64_t)bad));
		/* null: no stream's receiver is known (yet) */
		json_object_object_add(o, "receiver_bytes", rxknown > 0 ?
		    json_object_new_int64((int64_t)rxbytes) : NULL);
		json_object_object_add(o, "streams", l);
		emit(o);
	} else {
		if (r->n > 1)
			printf("[  SUM] %6.2f-%-6.2f s %12s %14s %9" PRIu64
			    " %5" PRIu64 "\n", from, to,
			    mib((double)bytes, b1, sizeof(b1)),
			    rate(dt > 0 ? bytes / dt : 0, b2, sizeof(b2)), ver,
			    bad);
		fflush(stdout);
	}
	r->prev_t = t;
}

/*
 * The senders have ended; their receivers (server streams of this
 * daemon) end a moment later, once the close has crossed: wait for
 * their final figures, a few seconds at most.
 */
static void
rx_settle(struct run *r)
{
	double deadline = now_s() + (interrupted ? RX_WAIT_INTR_S :
	    RX_WAIT_S);

	for (;;) {
		unsigned pending = 0;

		for (unsigned i = 0; i < r->n; i++) {
			const struct rx_fig *rx = rx_of(&r->s[i]);
			/* Another wsflowd's: any stream that connected. */
			bool has = r->rx_sock != NULL ? r->rx_why[0] == '\0' &&
			    r->s[i].last.local_port != 0 :
			    r->s[i].last.link_id != 0;

			if (has && (rx == NULL || !rx->ended))
				pending++;
		}
		if (pending == 0 || now_s() > deadline)
			return;
		nap(r->rx_sock != NULL ? 5 * POLL_S : POLL_S);
		if (fetch_all(r) != 0)
			return;
		fetch_remote(r, false);
	}
}

/* What the receivers said, summed over the streams whose is known. */
struct rx_sum {
	unsigned	 known, ended;
	uint64_t	 bytes, sent, digests, messages, bp_pauses, bp_usec;
	double		 secs;
};

static void
rx_sum(const struct run *r, struct rx_sum *x)
{
	memset(x, 0, sizeof(*x));
	for (unsigned i = 0; i < r->n; i++) {
		const struct rx_fig *rx = rx_of(&r->s[i]);
		double secs;

		if (rx == NULL)
			continue;
		x->known++;
		x->ended += rx->ended != 0;
		x->bytes += rx->bytes;
		x->sent += r->s[i].last.bytes;
		x->digests += rx->digests;
		x->messages += rx->messages;
		x->bp_pauses += rx->bp_pauses;
		x->bp_usec += rx->bp_usec;
		secs = rx->ended ? rx->run_usec / 1e6 : (double)rx->age_sec;
		if (secs > x->secs)
			x->secs = secs;
	}
}

#define RX_UNKNOWN	"the server is not a listener of this wsflowd: its " \
			"figures are not known here (another wsflowd of this " \
			"host: --receiver SOCKET)"

/* Why no receiver is known, in words. */
static const char *
rx_unknown(const struct run *r, char *buf, size_t len)
{
	if (r->rx_sock == NULL)
		return RX_UNKNOWN;
	if (r->rx_why[0] != '\0')
		snprintf(buf, len, "the wsflowd at %s was not asked: %s",
		    r->rx_sock, r->rx_why);
	else
		snprintf(buf, len, "no stream of the wsflowd at %s is one of "
		    "this run's connections", r->rx_sock);
	return buf;
}

/* Where the receivers are, in words. */
static const char *
rx_where(const struct run *r, char *buf, size_t len)
{
	if (r->rx_sock == NULL)
		return "this wsflowd";
	snprintf(buf, len, "the wsflowd at %s", r->rx_sock);
	return buf;
}

static struct json_object *
rx_json(const struct run *r, const struct rx_sum *x)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "known",
	    json_object_new_boolean(x->known > 0));
	if (x->known == 0) {
		char why[sizeof(r->rx_why) + 200];

		json_object_object_add(o, "reason", json_object_new_string(
		    rx_unknown(r, why, sizeof(why))));
		return o;
	}
	/* Whose streams they are: null, this daemon's; else the socket. */
	json_object_object_add(o, "socket", r->rx_sock != NULL ?
	    json_object_new_string(r->rx_sock) : NULL);
	json_object_object_add(o, "streams", json_object_new_int64(x->known));
	json_object_object_add(o, "streams_unknown",
	    json_object_new_int64(r->n - x->known));
	json_object_object_add(o, "streams_ended",
	    json_object_new_int64(x->ended));
	json_object_object_add(o, "bytes",
	    json_object_new_int64((int64_t)x->bytes));
	json_object_object_add(o, "bytes_sent",
	    json_object_new_int64((int64_t)x->sent));
	json_object_object_add(o, "seconds", json_object_new_double(x->secs));
	json_object_object_add(o, "bytes_per_sec",
	    json_object_new_int64(x->secs > 0 ? (int64_t)(x->bytes /
	    x->secs) : 0));
	json_object_object_add(o, "messages",
	    json_object_new_int64((int64_t)x->messages));
	json_object_object_add(o, "digests_sent",
	    json_object_new_int64((int64_t)x->digests));
	json_object_object_add(o, "backpressure_pauses",
	    json_object_new_int64((int64_t)x->bp_pauses));
	json_object_object_add(o, "backpressure_usec",
	    json_object_new_int64((int64_t)x->bp_usec));
	if (r->n == 1)
		json_object_object_add(o, "stream",
		    json_object_new_int64((int64_t)r->s[0].rx.id));
	return o;
}

static void
rx_text(const struct run *r, const struct rx_sum *x)
{
	char b1[32], b2[32], buf[sizeof(r->rx_why) + 200];
	const char *where;

	if (x->known == 0) {
		printf("received:  not known: %s\n", rx_unknown(r, buf,
		    sizeof(buf)));
		return;
	}
	where = rx_where(r, buf, sizeof(buf));
	if (r->n == 1)
		printf("received:  %s in %.2f s, %s, by stream %" PRIu64
		    " of %s (%s)\n", mib((double)x->bytes, b1,
		    sizeof(b1)), x->secs, rate(x->secs > 0 ? x->bytes /
		    x->secs : 0, b2, sizeof(b2)), r->s[0].rx.id, where,
		    r->s[0].rx.state);
	else
		printf("received:  %s in %.2f s, %s, by %u streams of %s "
		    "(%u ended)\n", mib((double)x->bytes, b1,
		    sizeof(b1)), x->secs, rate(x->secs > 0 ? x->bytes /
		    x->secs : 0, b2, sizeof(b2)), x->known, where, x->ended);
	printf("           %" PRIu64 " digest%s sent, backpressure %.3f s; ",
	    x->digests, x->digests == 1 ? "" : "s", x->bp_usec / 1e6);
	if (x->bytes == x->sent)
		printf("every octet sent arrived\n");
	else
		printf("%" PRIu64 " octets sent, %" PRIu64 " received\n",
		    x->sent, x->bytes);
	if (x->known < r->n)
		printf("           the receivers of %u stream%s are not "
		    "known\n", r->n - x->known, r->n - x->known == 1 ? "" :
		    "s");
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The summary; returns the run's exit status. */
static int
say_summary(struct run *r, double t)
{
	struct hist_snap lat, one;
	struct rx_sum rx;
	uint64_t bytes = 0, digests = 0, ver = 0, bad = 0, bp = 0;
	uint64_t *con = calloc(r->n, sizeof(*con));
	unsigned finished = 0, failed = 0;
	double secs = t - r->t0;
	bool complete;
	char b1[32], b2[32];

	/* The daemon's clock once they have ended: the longest run. */
	if (r->n > 0 && r->s[0].last.ended) {
		secs = 0;
		for (unsigned i = 0; i < r->n; i++)
			if (r->s[i].last.run_usec / 1e6 > secs)
				secs = r->s[i].last.run_usec / 1e6;
	}
	memset(&lat, 0, sizeof(lat));
	for (unsigned i = 0; i < r->n; i++) {
		const struct ctl_stream *s = &r->s[i].last;

		bytes += s->bytes;
		digests += s->digests;
		ver += s->digests_verified;
		bad += s->digest_mismatches;
		bp += s->backpressure_usec;
		stream_latency(s, &one);
		hist_merge(&lat, &one);
		if (con != NULL)
			con[i] = s->connect_tcp_us + s->connect_tls_us +
			    s->connect_upgrade_us;
		if (strcmp(s->state, "finished") == 0)
			finished++;
		else if (strcmp(s->state, "failed") == 0)
			failed++;
	}
	if (con != NULL)
		qsort(con, r->n, sizeof(*con), cmp_u64);
	rx_sum(r, &rx);
	complete = !interrupted && finished == r->n && bad == 0 &&
	    ver == digests && ver > 0;
	if (r->json) {
		struct json_object *o = json_object_new_object(),
		    *sm = json_object_new_object(),
		    *l = json_object_new_object(),
		    *c = json_object_new_object();

		json_object_object_add(sm, "bytes",
		    json_object_new_int64((int64_t)bytes));
		json_object_object_add(sm, "seconds",
		    json_object_new_double(secs));
		json_object_object_add(sm, "bytes_per_sec",
		    json_object_new_int64(secs > 0 ? (int64_t)(bytes / secs) :
		    0));
		json_object_object_add(sm, "streams",
		    json_object_new_int64(r->n));
		json_object_object_add(sm, "streams_finished",
		    json_object_new_int64(finished));
		json_object_object_add(sm, "streams_failed",
		    json_object_new_int64(failed));
		json_object_object_add(sm, "digests",
		    json_object_new_int64((int64_t)digests));
		json_object_object_add(sm, "digests_verified",
		    json_object_new_int64((int64_t)ver));
		json_object_object_add(sm, "digest_mismatches",
		    json_object_new_int64((int64_t)bad));
		json_object_object_add(l, "p50", json_object_new_int64(
		    (int64_t)hist_quantile(&lat, 0.5)));
		json_object_object_add(l, "p90", json_object_new_int64(
		    (int64_t)hist_quantile(&lat, 0.9)));
		json_object_object_add(l, "p99", json_object_new_int64(
		    (int64_t)hist_quantile(&lat, 0.99)));
		json_object_object_add(l, "max",
		    json_object_new_int64((int64_t)lat.max_us));
		json_object_object_add(sm, "digest_latency_us", l);
		json_object_object_add(c, "p50", json_object_new_int64(
		    con != NULL ? (int64_t)con[r->n / 2] : 0));
		json_object_object_add(c, "max", json_object_new_int64(
		    con != NULL ? (int64_t)con[r->n - 1] : 0));
		json_object_object_add(sm, "connect_us", c);
		json_object_object_add(sm, "backpressure_usec",
		    json_object_new_int64((int64_t)bp));
		json_object_object_add(sm, "streams_unseen",
		    json_object_new_int64(r->lost));
		json_object_object_add(sm, "interrupted",
		    json_object_new_boolean(interrupted != 0));
		json_object_object_add(sm, "complete",
		    json_object_new_boolean(complete));
		json_object_object_add(sm, "receiver", rx_json(r, &rx));
		json_object_object_add(o, "event",
		    json_object_new_string("end"));
		json_object_object_add(o, "summary", sm);
		emit(o);
	} else {
		printf("- - - - - - - - - - - - - - - - - - - - - - - - -\n");
		for (unsigned i = 0; i < r->n && r->n <= PER_STREAM_MAX; i++)
			printf("[%5" PRIu64 "] %-9s %s%s%s\n", r->s[i].id,
			    r->s[i].last.state, r->s[i].last.end_reason,
			    r->s[i].last.error[0] ? ": " : "",
			    r->s[i].last.error);
		printf("sent:      %s in %.2f s, %s, %u stream%s (%u "
		    "finished, %u failed)%s\n", mib((double)bytes, b1,
		    sizeof(b1)), secs, rate(secs > 0 ? bytes / secs : 0, b2,
		    sizeof(b2)), r->n, r->n == 1 ? "" : "s", finished, failed,
		    interrupted ? ", interrupted" : "");
		if (r->lost > 0)
			printf("note:      %u stream%s ended and left the "
			    "daemon's history (server.history) before this "
			    "run read %s end\n", r->lost, r->lost == 1 ? "" :
			    "s", r->lost == 1 ? "its" : "their");
		rx_text(r, &rx);
		printf("digests:   %" PRIu64 " verified, %" PRIu64
		    " mismatched, of %" PRIu64 "\n", ver, bad, digests);
		printf("latency:   p50 %.3f, p90 %.3f, p99 %.3f, max %.3f ms "
		    "(last byte of a batch to its digest)\n",
		    hist_quantile(&lat, 0.5) / 1e3,
		    hist_quantile(&lat, 0.9) / 1e3,
		    hist_quantile(&lat, 0.99) / 1e3, lat.max_us / 1e3);
		printf("connect:   p50 %.3f, max %.3f ms; backpressure %.3f s\n",
		    con != NULL ? con[r->n / 2] / 1e3 : 0,
		    con != NULL ? con[r->n - 1] / 1e3 : 0, bp / 1e6);
		printf("result:    %s\n", complete ? "complete, every digest "
		    "verified" : "INCOMPLETE");
		fflush(stdout);
	}
	free(con);
	return complete ? 0 : EXIT_FAILED;
}

int
cmd_run(const char *path, const struct parse_result *res,
    const struct output *out)
{
	struct run r;
	struct sigaction sa;
	double next, stop_deadline = 0;
	int rc;

	memset(&r, 0, sizeof(r));
	r.out = out;
	r.json = out == &json_output;
	r.n = res->run.parallel;
	if ((r.s = calloc(r.n, sizeof(*r.s))) == NULL) {
		out->error("out of memory", EXIT_FAILED);
		return EXIT_FAILED;
	}
	if ((rc = ctl_connect_or_say(&r.c, path, out)) != 0) {
		free(r.s);
		return rc;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;	/* no SA_RESTART: naps end at once */
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	/* Its newest stream first: receivers are newer than the run. */
	r.rx_sock = res->run.receiver;
	fetch_remote(&r, true);
	if ((rc = start_all(&r, res)) != 0) {
		out->error(r.why, rc);
		stop_all(&r);
		goto done;
	}
	/* Ids grow as they are handed out; bsearch wants them sorted. */
	qsort(r.s, r.n, sizeof(*r.s), by_id_sort);
	r.t0 = r.prev_t = now_s();
	say_start(&r, res);
	next = r.t0 + res->run.interval;
	for (;;) {
		unsigned ended = 0;
		double t;

		nap(POLL_S);
		if (interrupted && stop_deadline == 0) {
			stop_all(&r);
			stop_deadline = now_s() + STOP_WAIT_S;
		}
		if (fetch_all(&r) != 0) {
			out->error(r.why, r.status);
			rc = r.status;
			goto done;
		}
		for (unsigned i = 0; i < r.n; i++)
			ended += r.s[i].ended;
		t = now_s();
		if (t >= next || ended == r.n) {
			fetch_remote(&r, false);
			say_interval(&r, t);
			while (next <= t)
				next += res->run.interval;
		}
		if (ended == r.n || (stop_deadline != 0 && t > stop_deadline))
			break;
	}
	rx_settle(&r);
	rc = say_summary(&r, r.prev_t);
done:
	ctl_client_close(&r.c);
	free(r.s);
	return rc;
}
