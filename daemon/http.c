/*
 * http.c — plain HTTP on the WebSocket listeners: /healthz and /metrics.
 *
 * Off the data path: built on request, sent in one write, connection
 * closed or kept per HTTP/1.1 rules by lws.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsflowd.h"

#define METRICS_MAX_STREAMS	256	/* per-stream series beyond: summed */

struct body {
	char	*buf;
	size_t	 len, cap;
	bool	 failed;
};

static void __attribute__((format(printf, 2, 3)))
body_add(struct body *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		if (b->failed)
			return;
		va_start(ap, fmt);
		n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		char *nb = realloc(b->buf, b->cap * 2);
		if (nb == NULL) {
			b->failed = true;
			return;
		}
		b->buf = nb;
		b->cap *= 2;
	}
}

static void
metric(struct body *b, const char *name, const char *type, const char *help,
    unsigned long long v)
{
	body_add(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name,
	    type, name, v);
}

/* Label values: escape backslash, quote and newline. */
static void
label_escape(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *in && o + 3 < outlen; in++) {
		if (*in == '\\' || *in == '"') {
			out[o++] = '\\';
			out[o++] = *in;
		} else if (*in == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else
			out[o++] = *in;
	}
	out[o] = '\0';
}

/* The daemon's totals, as Prometheus sees them. */
static const struct {
	const char *name, *type, *help;
	size_t off;
} totals[] = {
	{ "wsflow_server_sockets", "gauge",
	    "accepted sockets, upgraded or not", offsetof(struct totals,
	    sockets) },
	{ "wsflow_server_refused_total", "counter",
	    "connections refused over max_connections",
	    offsetof(struct totals, refused) },
	{ "wsflow_server_connections", "gauge", "open server streams",
	    offsetof(struct totals, connections) },
	{ "wsflow_server_connections_total", "counter",
	    "server streams accepted", offsetof(struct totals,
	    connections_total) },
	{ "wsflow_server_bytes_received_total", "counter",
	    "octets received by the hashing server", offsetof(struct totals,
	    bytes_received) },
	{ "wsflow_server_digests_sent_total", "counter",
	    "digests sent by the hashing server", offsetof(struct totals,
	    digests_sent) },
	{ "wsflow_producers_running", "gauge", "producers running",
	    offsetof(struct totals, running) },
	{ "wsflow_producer_bytes_sent_total", "counter",
	    "octets sent by producers", offsetof(struct totals, bytes_sent) },
	{ "wsflow_producer_digests_received_total", "counter",
	    "digests received by producers", offsetof(struct totals,
	    digests_received) },
	{ "wsflow_producer_digests_verified_total", "counter",
	    "digests verified by producers", offsetof(struct totals,
	    digests_verified) },
	{ "wsflow_producer_digest_mismatches_total", "counter",
	    "digests that did not match", offsetof(struct totals,
	    digest_mismatches) },
};

static void
metrics_body(struct wsflowd *wd, struct body *b)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} per_stream[] = {
		{ "wsflow_stream_bytes_total", "octets received or sent",
		    offsetof(struct stream_stats, bytes) },
		{ "wsflow_stream_digests_total", "digests sent or received",
		    offsetof(struct stream_stats, digests) },
		{ "wsflow_stream_digests_verified_total",
		    "digests that matched (producers)",
		    offsetof(struct stream_stats, verified) },
		{ "wsflow_stream_digest_mismatches_total",
		    "digests that did not match (producers)",
		    offsetof(struct stream_stats, mismatched) },
	};
	int64_t now = lws_now_usecs();
	struct stream *s;
	struct totals t;

	totals_get(wd, &t);
	metric(b, "wsflow_uptime_seconds", "gauge", "seconds since start",
	    (unsigned long long)((now - wd->started_us) / LWS_US_PER_SEC));
	metric(b, "wsflow_workers", "gauge", "worker threads", wd->nworkers);
	for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++)
		metric(b, totals[i].name, totals[i].type, totals[i].help,
		    *(const uint64_t *)((const char *)&t + totals[i].off));

	for (size_t m = 0; m < sizeof(per_stream) / sizeof(per_stream[0]);
	    m++) {
		int n = 0;

		body_add(b, "# HELP %s per stream: %s\n# TYPE %s counter\n",
		    per_stream[m].name, per_stream[m].help, per_stream[m].name);
		pthread_mutex_lock(&wd->reg_lock);
		TAILQ_FOREACH(s, &wd->streams, entry) {
			char name[2 * WSFLOW_NAME_MAX];

			if (n++ == METRICS_MAX_STREAMS)
				break;
			label_escape(s->name, name, sizeof(name));
			body_add(b, "%s{id=\"%llu\",role=\"%s\",name=\"%s\"} "
			    "%llu\n", per_stream[m].name,
			    (unsigned long long)s->id,
			    s->role == ROLE_SERVER ? "server" : "producer",
			    name, (unsigned long long)atomic_load_explicit(
			    (const counter_t *)((const char *)&s->st +
			    per_stream[m].off), memory_order_relaxed));
		}
		pthread_mutex_unlock(&wd->reg_lock);
	}
}

static int
respond(struct lws *wsi, unsigned status, const char *type, const char *body,
    size_t len)
{
	uint8_t hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
	    *end = hdr + sizeof(hdr) - 1;
	uint8_t *out;
	int rc = -1;

	if (lws_add_http_common_headers(wsi, status, type, len, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	if ((out = malloc(LWS_PRE + len + 1)) == NULL)
		return -1;
	memcpy(out + LWS_PRE, body, len);
	if (lws_write(wsi, out + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) ==
	    (int)len)
		rc = 0;
	free(out);
	if (rc == 0 && lws_http_transaction_completed(wsi))
		return -1;
	return rc;
}

int
http_serve(struct worker *w, struct lws *wsi, const char *path)
{
	struct wsflowd *wd = w->wd;
	struct body b = { NULL, 0, 4096, false };
	int rc;

	if (path == NULL)
		path = "";
	if (!w->params.metrics) {
		lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	if (strcmp(path, "/healthz") == 0) {
		if (wd->stopping)
			return respond(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
			    "text/plain", "stopping\n", 9);
		return respond(wsi, HTTP_STATUS_OK, "text/plain", "ok\n", 3);
	}
	if (strcmp(path, "/metrics") != 0) {
		lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	if ((b.buf = malloc(b.cap)) == NULL)
		return -1;
	metrics_body(wd, &b);
	rc = b.failed ? -1 : respond(wsi, HTTP_STATUS_OK,
	    "text/plain; version=0.0.4", b.buf, b.len);
	free(b.buf);
	return rc;
}
