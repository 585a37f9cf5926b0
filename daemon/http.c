/*
 * http.c — plain HTTP on the WebSocket listeners: the live page (GET /,
 * live.c), /healthz, /metrics and every refusal of a handshake.
 *
 * Off the data path: an answer is built whole on request.  On listeners
 * wsflowd reads itself (wsserver.c) it is one buffer, Connection: close,
 * and the connection ends after it: a request body is never read, so it
 * can never be taken for a second request.  Under framing = "lws" the
 * same resources are answered through lws, one answer a connection.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "http.h"
#include "live.h"
#include "upgrade.h"
#include "worker.h"


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

/* One family's head. */
static void
family(struct body *b, const char *name, const char *type, const char *help)
{
	body_add(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A histogram of µs as Prometheus seconds, under one label. */
static void
histogram(struct body *b, const char *name, const char *label,
    const struct hist_snap *h)
{
	for (unsigned k = 0; k < hist_prom_edges(); k++)
		body_add(b, "%s_bucket{%s,le=\"%g\"} %llu\n", name, label,
		    hist_prom_edge_us(k) / 1e6, (unsigned long long)
		    hist_prom_cumulative(h, k));
	body_add(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n%s_sum{%s} %.6f\n"
	    "%s_count{%s} %llu\n", name, label, (unsigned long long)h->count,
	    name, label, h->sum_us / 1e6, name, label,
	    (unsigned long long)h->count);
}

/* Server streams by mode, producers by name: no label grows with use. */
static void
groups_body(struct wsflowd *wd, struct body *b)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
		bool server, producer;
	} fam[] = {
		{ "wsflow_server_streams", "gauge", "open server streams, by "
		    "mode", offsetof(struct metric_acc, live), true, false },
		{ "wsflow_server_streams_total", "counter", "server streams, "
		    "by mode", offsetof(struct metric_acc, streams), true,
		    false },
		{ "wsflow_server_stream_bytes_total", "counter", "octets "
		    "received, by mode", offsetof(struct metric_acc, bytes),
		    true, false },
		{ "wsflow_server_stream_digests_total", "counter", "digests "
		    "sent, by mode", offsetof(struct metric_acc, digests), true,
		    false },
		{ "wsflow_producer_streams", "gauge", "producer streams "
		    "running, by name (\"\" ad hoc)", offsetof(struct
		    metric_acc, live), false, true },
		{ "wsflow_producer_streams_total", "counter", "producer "
		    "streams started, by name", offsetof(struct metric_acc,
		    streams), false, true },
		{ "wsflow_producer_stream_bytes_total", "counter", "octets "
		    "sent, by producer name", offsetof(struct metric_acc,
		    bytes), false, true },
		{ "wsflow_producer_stream_digests_verified_total", "counter",
		    "digests that matched, by producer name",
		    offsetof(struct metric_acc, verified), false, true },
		{ "wsflow_producer_stream_digest_mismatches_total", "counter",
		    "digests that did not match, by producer name",
		    offsetof(struct metric_acc, mismatched), false, true },
		{ "wsflow_producer_reconnects_total", "counter", "connection "
		    "attempts after a failure or a drop, by producer name",
		    offsetof(struct metric_acc, reconnects), false, true },
	};
	static const char *fail[FAIL_REASONS] = { "connect", "lost",
	    "protocol" };
	struct metric_acc server[4], *prod = NULL;
	unsigned nprod = 0;
	char name[2 * WSFLOW_NAME_MAX], label[2 * WSFLOW_NAME_MAX + 16];

	if (metrics_collect(&wd->reg, server, &prod, &nprod) == -1) {
		b->failed = true;
		return;
	}
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		family(b, fam[f].name, fam[f].type, fam[f].help);
		/* Servers have no "producer" mode. */
		for (unsigned m = MODE_STREAMING; fam[f].server && m < 4; m++)
			body_add(b, "%s{mode=\"%s\"} %llu\n", fam[f].name,
			    wsflow_mode_name(m), (unsigned long long)
			    *(const uint64_t *)((const char *)&server[m] +
			    fam[f].off));
		for (unsigned i = 0; fam[f].producer && i < nprod; i++) {
			label_escape(prod[i].name, name, sizeof(name));
			body_add(b, "%s{name=\"%s\"} %llu\n", fam[f].name, name,
			    (unsigned long long)*(const uint64_t *)((const
			    char *)&prod[i] + fam[f].off));
		}
	}
	family(b, "wsflow_producer_failures_total", "counter", "connections "
	    "that failed (connect: never came up; lost: broke while "
	    "streaming; protocol: not a hashing server's answer), by "
	    "producer name");
	for (unsigned i = 0; i < nprod; i++) {
		label_escape(prod[i].name, name, sizeof(name));
		for (unsigned r = 0; r < FAIL_REASONS; r++)
			body_add(b, "wsflow_producer_failures_total{name=\"%s\","
			    "reason=\"%s\"} %llu\n", name, fail[r],
			    (unsigned long long)prod[i].fail[r]);
	}
	family(b, "wsflow_digest_latency_seconds", "histogram", "from the "
	    "last octet of a batch to its digest, by producer name");
	for (unsigned i = 0; i < nprod; i++) {
		label_escape(prod[i].name, name, sizeof(name));
		snprintf(label, sizeof(label), "name=\"%s\"", name);
		histogram(b, "wsflow_digest_latency_seconds", label,
		    &prod[i].latency);
	}
	family(b, "wsflow_connect_seconds", "histogram", "from connect to "
	    "the upgrade's answer, by producer name");
	for (unsigned i = 0; i < nprod; i++) {
		label_escape(prod[i].name, name, sizeof(name));
		snprintf(label, sizeof(label), "name=\"%s\"", name);
		histogram(b, "wsflow_connect_seconds", label, &prod[i].connect);
	}
	free(prod);
}

static void
metrics_body(struct wsflowd *wd, struct body *b)
{
	int64_t now = lws_now_usecs();
	struct totals t;

	totals_get(&wd->reg, &t);
	metric(b, "wsflow_uptime_seconds", "gauge", "seconds since start",
	    (unsigned long long)((now - wd->started_us) / LWS_US_PER_SEC));
	metric(b, "wsflow_workers", "gauge", "worker threads", wd->nworkers);
	for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++)
		metric(b, totals[i].name, totals[i].type, totals[i].help,
		    *(const uint64_t *)((const char *)&t + totals[i].off));
	groups_body(wd, b);
}

/* The answer to a GET of path, whoever carries it: status, type, body. */
struct resource {
	unsigned	 status;
	const char	*type;
	char		*body;		/* malloc'd */
	size_t		 len;
};

static int
text_body(struct resource *r, unsigned status, const char *text)
{
	r->status = status;
	r->type = "text/plain";
	r->len = strlen(text);
	return (r->body = strdup(text)) == NULL ? -1 : 0;
}

static int
resource_get(struct worker *w, const char *path, struct resource *r)
{
	struct wsflowd *wd = w->wd;
	size_t n = strcspn(path, "?");
	struct body b = { NULL, 0, 4096, false };

	memset(r, 0, sizeof(*r));
	if (w->params.dashboard && n == 1 && path[0] == '/') {
		r->status = 200;
		r->type = "text/html; charset=utf-8";
		return live_page(wd, &r->body, &r->len);
	}
	if (w->params.metrics && n == 8 && strncmp(path, "/healthz", 8) == 0) {
		if (wd->stopping)
			return text_body(r, 503, "stopping\n");
		if (worker_stalled(wd, NULL) != -1)
			return text_body(r, 503, "a worker is stalled\n");
		return text_body(r, 200, "ok\n");
	}
	if (!w->params.metrics || n != 8 || strncmp(path, "/metrics", 8) != 0)
		return text_body(r, 404, "not found\n");
	if ((b.buf = malloc(b.cap)) == NULL)
		return -1;
	metrics_body(wd, &b);
	if (b.failed) {
		free(b.buf);
		return -1;
	}
	r->status = 200;
	r->type = "text/plain; version=0.0.4";
	r->body = b.buf;
	r->len = b.len;
	return 0;
}

static const char *
reason_phrase(unsigned status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 414: return "URI Too Long";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

/*
 * The whole answer to a request read on our own path (status as
 * upgrade_status gave it, not 101), in a malloc'd buffer.
 */
int
http_answer(struct worker *w, const struct upgrade *u, unsigned status,
    const char *why, char **out, size_t *outlen)
{
	struct resource r;
	struct body a = { NULL, 0, 512, false };
	const char *extra = "";

	if (status == 200) {
		if (resource_get(w, u->path, &r) == -1)
			return -1;
	} else {
		char text[128];

		snprintf(text, sizeof(text), "%s\n", why);
		if (text_body(&r, status, text) == -1)
			return -1;
	}
	if (r.status == 405)
		extra = "Allow: GET, HEAD\r\n";
	else if (r.status == 426)
		extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
	if ((a.buf = malloc(a.cap + r.len)) == NULL) {
		free(r.body);
		return -1;
	}
	a.cap += r.len;
	body_add(&a, "HTTP/1.1 %u %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%sConnection: close\r\n\r\n", r.status,
	    reason_phrase(r.status), r.type, r.len, extra);
	if (!a.failed && u->method != METHOD_HEAD) {
		memcpy(a.buf + a.len, r.body, r.len);
		a.len += r.len;
	}
	free(r.body);
	if (a.failed) {
		free(a.buf);
		return -1;
	}
	*out = a.buf;
	*outlen = a.len;
	return 0;
}

/* ---- listeners lws frames (TLS, framing = "lws") ---- */

static int
respond(struct lws *wsi, const struct resource *r, bool head)
{
	uint8_t hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
	    *end = hdr + sizeof(hdr) - 1;
	uint8_t *out;
	int rc = -1;

	if (lws_add_http_common_headers(wsi, r->status, r->type, r->len, &p,
	    end) || lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
	    (const unsigned char *)"close", 5, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	if (!head) {
		if ((out = malloc(LWS_PRE + r->len + 1)) == NULL)
			return -1;
		memcpy(out + LWS_PRE, r->body, r->len);
		(void)lws_write(wsi, out + LWS_PRE, r->len,
		    LWS_WRITE_HTTP_FINAL);
		free(out);
	}
	/*
	 * One request a connection, as on our own listeners: lws 4.1.6 spins
	 * on a pipelined request with a body (its deferred-action buflist),
	 * so it never gets to parse a second one.
	 */
	return rc;
}

/* A refusal through lws: status, a short body, and the connection ends. */
static int
refuse_lws(struct lws *wsi, unsigned status, const char *extra_name,
    const char *extra_value)
{
	uint8_t hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
	    *end = hdr + sizeof(hdr) - 1;

	if (lws_add_http_header_status(wsi, status, &p, end) ||
	    (extra_name != NULL && lws_add_http_header_by_name(wsi,
	    (const unsigned char *)extra_name,
	    (const unsigned char *)extra_value, (int)strlen(extra_value),
	    &p, end)) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
	    (const unsigned char *)"close", 5, &p, end) ||
	    lws_add_http_header_content_length(wsi, 0, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	return -1;	/* done: close, never read a body */
}

int
http_serve(struct worker *w, struct lws *wsi, const char *path)
{
	struct resource r;
	bool head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
	int rc;

	if (!head && lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
		return refuse_lws(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED,
		    "Allow:", "GET, HEAD");
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 ||
	    lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
		return refuse_lws(wsi, HTTP_STATUS_BAD_REQUEST, NULL, NULL);
	if (resource_get(w, path != NULL ? path : "", &r) == -1)
		return -1;
	rc = respond(wsi, &r, head);
	free(r.body);
	return rc;
}
