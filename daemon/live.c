/*
 * live.c — the live page's data: the JSON snapshot /live sends once a
 * second, and the page served at GET / with the streams' table inside.
 *
 * Off the data path: a snapshot reads the registry the way the control
 * socket does (counters lock-free, the history under the registry's
 * lock).  It is built at most once a second, by whichever viewer asks
 * first, and shared by reference: a hundred viewers on four workers
 * cost one build a second, not a hundred.  No viewer, no build.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_proto.h"
#include "daemon.h"
#include "live.h"

/* The page (daemon/live/page.html), compiled in by the Makefile. */
extern const char live_page_html[];
extern const unsigned long live_page_html_len;

#define TABLE_MARK	"<!--TABLE-->"

struct buf {
	char	*p;
	size_t	 len, cap;
	bool	 failed;
};

static bool
buf_room(struct buf *b, size_t n)
{
	char *np;
	size_t cap;

	if (b->failed)
		return false;
	if (b->len + n < b->cap)
		return true;
	for (cap = b->cap ? b->cap : 4096; b->len + n >= cap; cap *= 2)
		;
	if ((np = realloc(b->p, cap)) == NULL) {
		b->failed = true;
		return false;
	}
	b->p = np;
	b->cap = cap;
	return true;
}

static void
buf_mem(struct buf *b, const char *s, size_t n)
{
	if (!buf_room(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void __attribute__((format(printf, 2, 3)))
buf_add(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !buf_room(b, (size_t)n))
		return;
	va_start(ap, fmt);
	(void)vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/*
 * A JSON string.  Octets above 0x7f are escaped one by one (\u00XX):
 * names and URLs are ASCII in practice, and a stray invalid UTF-8
 * octet must not make the browser fail the whole feed.
 */
static void
json_str(struct buf *b, const char *key, const char *s)
{
	buf_add(b, "\"%s\":\"", key);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			buf_add(b, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			buf_add(b, "\\u%04x", c);
		else
			buf_mem(b, s, 1);
	}
	buf_mem(b, "\",", 2);
}

static void
json_u64(struct buf *b, const char *key, uint64_t v)
{
	buf_add(b, "\"%s\":%llu,", key, (unsigned long long)v);
}

/* Drop the comma after an object's last member. */
static void
json_close(struct buf *b, char c)
{
	if (!b->failed && b->len > 0 && b->p[b->len - 1] == ',')
		b->len--;
	buf_add(b, "%c,", c);
}

static void
latency(const struct ctl_stream *s, struct hist_snap *h)
{
	h->count = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		h->count += h->n[i] = s->latency_n[i];
	h->sum_us = s->latency_sum_us;
	h->max_us = s->latency_max_us;
}

/* One stream, with the names of wsflowctl -j streams -a and show -j. */
static void
stream_json(struct buf *b, const struct ctl_stream *s)
{
	struct hist_snap h;

	buf_mem(b, "{", 1);
	json_u64(b, "id", s->id);
	json_str(b, "name", s->name);
	json_str(b, "role", stream_role_name(s->role));
	json_str(b, "peer", s->peer);
	json_str(b, "mode", wsflow_mode_name(s->mode));
	json_str(b, "state", s->state);
	buf_add(b, "\"ended\":%s,", s->ended ? "true" : "false");
	json_u64(b, "age_sec", s->age_sec);
	json_u64(b, "bytes", s->bytes);
	json_u64(b, "messages", s->messages);
	json_u64(b, "digests", s->digests);
	json_u64(b, "digests_verified", s->digests_verified);
	json_u64(b, "digest_mismatches", s->digest_mismatches);
	json_u64(b, "bytes_per_sec", s->ended ? 0 : s->bytes_per_sec);
	json_u64(b, "avg_bytes_per_sec", s->avg_bytes_per_sec);
	json_u64(b, "backpressure_pauses", s->backpressure_pauses);
	json_u64(b, "backpressure_usec", s->backpressure_usec);
	json_u64(b, "reconnects", s->reconnects);
	json_str(b, "end_reason", s->end_reason);
	json_str(b, "error", s->error);
	latency(s, &h);
	buf_add(b, "\"digest_latency_us\":{\"p50\":%llu,\"p90\":%llu,"
	    "\"p99\":%llu,\"max\":%llu,\"count\":%llu}",
	    (unsigned long long)hist_quantile(&h, 0.50),
	    (unsigned long long)hist_quantile(&h, 0.90),
	    (unsigned long long)hist_quantile(&h, 0.99),
	    (unsigned long long)h.max_us, (unsigned long long)h.count);
	buf_mem(b, "},", 2);
}

/* status -j's fields. */
static void
status_json(struct wsflowd *wd, struct buf *b, int64_t now)
{
	struct totals t;
	unsigned long n;

	pthread_mutex_lock(&wd->reg.lock);
	n = wd->reg.nstreams;
	pthread_mutex_unlock(&wd->reg.lock);
	totals_get(&wd->reg, &t);
	buf_mem(b, "\"status\":{", 10);
	json_str(b, "version", WSFLOW_VERSION);
	json_u64(b, "pid", (uint64_t)getpid());
	json_u64(b, "uptime_sec", (uint64_t)((now - wd->started_us) /
	    LWS_US_PER_SEC));
	json_u64(b, "workers", wd->nworkers);
	json_u64(b, "stream_count", n);
	buf_add(b, "\"server\":{\"connections\":%llu,\"connections_total\":"
	    "%llu,\"bytes_received\":%llu,\"digests_sent\":%llu},",
	    (unsigned long long)t.connections,
	    (unsigned long long)t.connections_total,
	    (unsigned long long)t.bytes_received,
	    (unsigned long long)t.digests_sent);
	buf_add(b, "\"producers\":{\"running\":%llu,\"bytes_sent\":%llu,"
	    "\"digests_received\":%llu,\"digests_verified\":%llu,"
	    "\"digest_mismatches\":%llu}", (unsigned long long)t.running,
	    (unsigned long long)t.bytes_sent,
	    (unsigned long long)t.digests_received,
	    (unsigned long long)t.digests_verified,
	    (unsigned long long)t.digest_mismatches);
	buf_mem(b, "},", 2);
}

/*
 * Every stream as ctl_stream, live ones first then the ended (oldest
 * first): *out malloc'd.  Under the registry's lock only for the copy.
 */
static int
collect(struct wsflowd *wd, int64_t now, struct ctl_stream **out,
    size_t *n)
{
	struct ctl_stream *v;
	struct stream *s;
	size_t i = 0, cap;

	pthread_mutex_lock(&wd->reg.lock);
	cap = wd->reg.nstreams + wd->reg.hist_len;
	if ((v = calloc(cap ? cap : 1, sizeof(*v))) == NULL) {
		pthread_mutex_unlock(&wd->reg.lock);
		return -1;
	}
	TAILQ_FOREACH(s, &wd->reg.streams, entry)
		if (i < cap)
			stream_ctl_info(s, &v[i++], now);
	for (unsigned k = 0; k < wd->reg.hist_len && i < cap; k++)
		record_ctl_info(history_at_locked(&wd->reg, k), &v[i++]);
	pthread_mutex_unlock(&wd->reg.lock);
	*out = v;
	*n = i;
	return 0;
}

static struct live_snap *
build(struct wsflowd *wd, int64_t now)
{
	struct buf b = { NULL, 0, 0, false };
	struct ctl_stream *v;
	struct live_snap *snap;
	size_t n;

	if (collect(wd, now, &v, &n) == -1)
		return NULL;
	buf_add(&b, "{\"time\":%.3f,", (double)now / LWS_US_PER_SEC);
	status_json(wd, &b, now);
	buf_mem(&b, "\"streams\":[", 11);
	for (size_t i = 0; i < n; i++)
		stream_json(&b, &v[i]);
	json_close(&b, ']');
	json_close(&b, '}');
	free(v);
	if (b.failed || (snap = malloc(sizeof(*snap) + b.len)) == NULL) {
		free(b.p);
		return NULL;
	}
	atomic_init(&snap->refs, 1);
	snap->len = b.len - 1;		/* without json_close's last comma */
	memcpy(snap->json, b.p, snap->len);
	free(b.p);
	return snap;
}

void
live_init(struct live *l)
{
	pthread_mutex_init(&l->lock, NULL);
	l->snap = NULL;
	l->sec = -1;
}

void
live_free(struct live *l)
{
	if (l->snap != NULL)
		live_put(l->snap);
	l->snap = NULL;
	pthread_mutex_destroy(&l->lock);
}

struct live_snap *
live_get(struct wsflowd *wd, int64_t now_us)
{
	struct live *l = &wd->live;
	struct live_snap *snap;
	int64_t sec = now_us / LWS_US_PER_SEC;

	pthread_mutex_lock(&l->lock);
	if (l->snap == NULL || l->sec != sec) {
		if ((snap = build(wd, now_us)) != NULL) {
			if (l->snap != NULL)
				live_put(l->snap);
			l->snap = snap;
			l->sec = sec;
		}
	}
	if ((snap = l->snap) != NULL)
		atomic_fetch_add(&snap->refs, 1);
	pthread_mutex_unlock(&l->lock);
	return snap;
}

void
live_put(struct live_snap *snap)
{
	if (snap != NULL && atomic_fetch_sub(&snap->refs, 1) == 1)
		free(snap);
}

static void
html_text(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&': buf_mem(b, "&amp;", 5); break;
		case '<': buf_mem(b, "&lt;", 4); break;
		case '>': buf_mem(b, "&gt;", 4); break;
		case '"': buf_mem(b, "&quot;", 6); break;
		case '\'': buf_mem(b, "&#39;", 5); break;
		default: buf_mem(b, s, 1); break;
		}
	}
}

static void
html_cell(struct buf *b, const char *s)
{
	buf_mem(b, "<td>", 4);
	html_text(b, s);
	buf_mem(b, "</td>", 5);
}

/* The page's view without script: one row per stream, as it is now. */
static void
table(struct wsflowd *wd, struct buf *b, int64_t now)
{
	struct ctl_stream *v;
	size_t n;

	if (collect(wd, now, &v, &n) == -1) {
		b->failed = true;
		return;
	}
	buf_mem(b, "<table id=\"static\"><thead><tr><th>id</th><th>name</th>"
	    "<th>role</th><th>peer</th><th>mode</th><th>state</th>"
	    "<th>bytes</th><th>bytes/s</th><th>verified</th>"
	    "<th>mismatched</th><th>end reason</th></tr></thead><tbody>\n",
	    strlen("<table id=\"static\"><thead><tr><th>id</th><th>name</th>"
	    "<th>role</th><th>peer</th><th>mode</th><th>state</th>"
	    "<th>bytes</th><th>bytes/s</th><th>verified</th>"
	    "<th>mismatched</th><th>end reason</th></tr></thead><tbody>\n"));
	for (size_t i = 0; i < n; i++) {
		const struct ctl_stream *s = &v[i];

		buf_add(b, "<tr class=\"%s%s\"><td>%llu</td>",
		    s->ended ? "ended" : "live",
		    s->digest_mismatches ? " mismatch" : "",
		    (unsigned long long)s->id);
		html_cell(b, s->name);
		html_cell(b, stream_role_name(s->role));
		html_cell(b, s->peer);
		html_cell(b, wsflow_mode_name(s->mode));
		html_cell(b, s->state);
		buf_add(b, "<td>%llu</td><td>%llu</td><td>%llu</td>"
		    "<td>%llu</td>", (unsigned long long)s->bytes,
		    (unsigned long long)(s->ended ? 0 : s->bytes_per_sec),
		    (unsigned long long)s->digests_verified,
		    (unsigned long long)s->digest_mismatches);
		html_cell(b, s->end_reason);
		buf_mem(b, "</tr>\n", 6);
	}
	buf_mem(b, "</tbody></table>", 16);
	free(v);
}

int
live_page(struct wsflowd *wd, char **out, size_t *outlen)
{
	struct buf b = { NULL, 0, 0, false };
	const char *mark = memmem(live_page_html, live_page_html_len,
	    TABLE_MARK, strlen(TABLE_MARK));
	size_t head = mark != NULL ? (size_t)(mark - live_page_html) :
	    live_page_html_len;

	buf_mem(&b, live_page_html, head);
	if (mark != NULL) {
		table(wd, &b, lws_now_usecs());
		head += strlen(TABLE_MARK);
		buf_mem(&b, live_page_html + head, live_page_html_len - head);
	}
	if (b.failed) {
		free(b.p);
		return -1;
	}
	*out = b.p;
	*outlen = b.len;
	return 0;
}
