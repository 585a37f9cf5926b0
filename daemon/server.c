/*
 * server.c — the hashing server: the data path of a server stream.
 *
 * socket -> lws (unmask, in place) -> batcher (running digest, cut at
 * batch boundaries) -> digest queue -> one text message per WRITEABLE.
 *
 * Hashing is synchronous in RECEIVE, so TCP backpressure is automatic: lws
 * reads the socket only when we are done with the last chunk.  The only
 * thing that can pile up is digests for a peer that does not read them;
 * reading stops at a high-water mark and resumes when the queue drains.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "log.h"
#include "wsflowd.h"

#define QUEUE_HIGH	8	/* digests queued: stop reading */
#define QUEUE_LOW	2	/* ... and read again */

struct server_conn {
	struct stream	 s;		/* first: the registry sees this */
	struct wsflowd	*wd;
	struct lws	*wsi;
	struct batcher	 b;
	uint8_t		*queue;		/* ring of raw digests */
	unsigned	 qcap, qhead, qlen;
	int64_t		 last_rx_us;
	int64_t		 paused_at_us;
	bool		 open;		/* registered, batcher live */
	bool		 paused;	/* rx off: peer not reading digests */
	bool		 closing;	/* send close 1001 when writable */
	uint8_t		 tx[LWS_PRE + 2 * EVP_MAX_MD_SIZE];
};

static int
path_mode(const char *path, enum wsflow_mode *mode)
{
	size_t n = strcspn(path, "?");

	if ((n == 1 && path[0] == '/') || (n == 7 &&
	    strncmp(path, "/stream", 7) == 0))
		*mode = MODE_STREAMING;
	else if (n == 6 && strncmp(path, "/frame", 6) == 0)
		*mode = MODE_FRAME;
	else if (n == 8 && strncmp(path, "/message", 8) == 0)
		*mode = MODE_MESSAGE;
	else
		return -1;
	return 0;
}

static void
peer_name(struct lws *wsi, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	buf[0] = '\0';
	if (getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&ss,
	    &sl) == -1)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
	}
}

/* Batcher callback: queue one digest for sending. */
static int
enqueue(void *arg, const uint8_t *md, unsigned len)
{
	struct server_conn *c = arg;

	if (c->qlen == c->qcap)		/* cannot happen: sized per chunk */
		return -1;
	memcpy(c->queue + (size_t)((c->qhead + c->qlen) % c->qcap) * len, md,
	    len);
	c->qlen++;
	return 0;
}

static int
conn_open(struct server_conn *c, struct lws *wsi)
{
	struct wsflowd *wd = lws_context_user(lws_get_context(wsi));
	char path[128];
	enum wsflow_mode mode = MODE_STREAMING;
	uint64_t batch;

	c->wd = wd;
	c->wsi = wsi;
	if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) > 0)
		(void)path_mode(path, &mode);
	/* Frame and message modes cut by hand: no batch ever completes. */
	batch = mode == MODE_STREAMING ? wd->conf.server.batch_size :
	    UINT64_MAX;
	if (batcher_init(&c->b, wd->md, batch) == -1)
		return -1;
	/* Room for what one chunk can produce, plus the high-water mark. */
	c->qcap = QUEUE_HIGH + (unsigned)batcher_max_boundaries(&c->b,
	    WSFLOW_RX_CHUNK);
	if ((c->queue = malloc((size_t)c->qcap * c->b.md_len)) == NULL) {
		batcher_free(&c->b);
		return -1;
	}
	peer_name(wsi, c->s.peer, sizeof(c->s.peer));
	stream_register(wd, &c->s, ROLE_SERVER, mode);
	c->s.state = "open";
	c->open = true;
	c->last_rx_us = lws_now_usecs();
	wd->server.connections++;
	wd->server.connections_total++;
	log_stream(LOG_INFO, &c->s, "stream-open", "%s stream from %s",
	    conf_mode_name(mode), c->s.peer);
	if (wd->stopping) {	/* raced with a stop: say goodbye at once */
		c->closing = true;
		lws_callback_on_writable(wsi);
	}
	return 0;
}

static void
conn_close(struct server_conn *c)
{
	struct wsflowd *wd = c->wd;

	if (!c->open)
		return;
	c->open = false;
	wd->server.connections--;
	log_stream(LOG_INFO, &c->s, "stream-close",
	    "closed: %llu bytes, %llu messages, %llu digests sent",
	    (unsigned long long)c->s.st.bytes,
	    (unsigned long long)c->s.st.messages,
	    (unsigned long long)c->s.st.digests);
	stream_unregister(wd, &c->s);
	batcher_free(&c->b);
	free(c->queue);
	c->queue = NULL;
}

static int
conn_receive(struct server_conn *c, struct lws *wsi, const void *in,
    size_t len)
{
	struct wsflowd *wd = c->wd;
	uint8_t md[EVP_MAX_MD_SIZE];

	if (lws_is_first_fragment(wsi) && batcher_begin(&c->b) == -1)
		return -1;
	c->s.st.bytes += len;
	wd->server.bytes_received += len;
	c->last_rx_us = lws_now_usecs();
	if (batcher_feed(&c->b, in, len, enqueue, c) == -1)
		return -1;
	switch (c->s.mode) {
	case MODE_FRAME:
		/* The frame ends with this chunk (an empty frame too). */
		if (lws_remaining_packet_payload(wsi) == 0 &&
		    (batcher_running(&c->b, md) == -1 ||
		    enqueue(c, md, c->b.md_len) == -1))
			return -1;
		break;
	case MODE_MESSAGE:
		if (lws_is_final_fragment(wsi) &&
		    (batcher_final(&c->b, md) == -1 ||
		    enqueue(c, md, c->b.md_len) == -1))
			return -1;
		break;
	default:
		break;
	}
	if (lws_is_final_fragment(wsi)) {
		c->s.st.messages++;
		wd->server.messages++;
	}
	if (c->qlen > 0)
		lws_callback_on_writable(wsi);
	if (c->qlen >= QUEUE_HIGH && !c->paused) {
		/* The rest of this read is kept by lws and replayed later. */
		c->paused = true;
		c->paused_at_us = lws_now_usecs();
		c->s.st.bp_pauses++;
		c->s.state = "paused";
		lws_rx_flow_control(wsi, 0);
	}
	return 0;
}

static int
conn_writeable(struct server_conn *c, struct lws *wsi)
{
	unsigned len = c->b.md_len;
	char *hex = (char *)c->tx + LWS_PRE;

	if (c->closing) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY,
		    (unsigned char *)"shutting down", 13);
		return -1;
	}
	if (c->qlen == 0)
		return 0;
	digest_hex(c->queue + (size_t)c->qhead * len, len, hex);
	if (lws_write(wsi, c->tx + LWS_PRE, 2 * len, LWS_WRITE_TEXT) <
	    (int)(2 * len))
		return -1;
	memcpy(c->s.last_digest, hex, 2 * len + 1);
	c->qhead = (c->qhead + 1) % c->qcap;
	c->qlen--;
	c->s.st.digests++;
	c->wd->server.digests_sent++;
	if (c->qlen > 0)
		lws_callback_on_writable(wsi);
	if (c->paused && c->qlen <= QUEUE_LOW) {
		c->paused = false;
		c->s.st.bp_usec += (uint64_t)(lws_now_usecs() - c->paused_at_us);
		c->s.state = "open";
		lws_rx_flow_control(wsi, 1 | LWS_RXFLOW_REASON_FLAG_PROCESS_NOW);
	}
	return 0;
}

static int
server_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	struct server_conn *c = user;
	struct wsflowd *wd;
	enum wsflow_mode mode;
	char path[128];

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		wd = lws_context_user(lws_get_context(wsi));
		return http_serve(wd, wsi, in);

	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* Refuse upgrades to paths that name no mode. */
		if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <=
		    0 || path_mode(path, &mode) == -1)
			return 1;
		return 0;

	case LWS_CALLBACK_ESTABLISHED:
		return conn_open(c, wsi);

	case LWS_CALLBACK_RECEIVE:
		return c->open ? conn_receive(c, wsi, in, len) : -1;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		return c->open ? conn_writeable(c, wsi) : 0;

	case LWS_CALLBACK_CLOSED:
		if (c != NULL)
			conn_close(c);
		return 0;

	case LWS_CALLBACK_WSI_DESTROY:
		/* lws tells protocols[0] of every wsi of the vhost. */
		if (lws_get_protocol(wsi) == NULL ||
		    lws_get_protocol(wsi)->callback != server_callback)
			return 0;
		if (c != NULL)
			conn_close(c);
		/* Every accepted socket ends here, upgraded or not. */
		wd = lws_context_user(lws_get_context(wsi));
		if (wd->server.sockets > 0)
			wd->server.sockets--;
		return 0;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

const struct lws_protocols server_protocol = {
	.name = "wsflow",
	.callback = server_callback,
	.per_session_data_size = sizeof(struct server_conn),
	.rx_buffer_size = WSFLOW_RX_CHUNK,
};

static struct server_conn *
conn_of(struct stream *s)
{
	return (struct server_conn *)s;	/* s is the first member */
}

/* Close 1001 at the stream's next WRITEABLE. */
void
server_stream_close(struct stream *s)
{
	struct server_conn *c = conn_of(s);

	c->closing = true;
	s->state = "closing";
	lws_callback_on_writable(c->wsi);
}

void
server_stop_all(struct wsflowd *wd)
{
	struct stream *s;

	TAILQ_FOREACH(s, &wd->streams, entry)
		if (s->role == ROLE_SERVER)
			server_stream_close(s);
}

/* Once a second: rates, and idle streams sent away. */
void
server_tick(struct wsflowd *wd, int64_t now_us)
{
	int64_t idle = (int64_t)wd->conf.server.idle_timeout * LWS_US_PER_SEC;
	struct stream *s;

	TAILQ_FOREACH(s, &wd->streams, entry) {
		struct server_conn *c;

		if (s->role != ROLE_SERVER)
			continue;
		c = conn_of(s);
		stream_sample_rate(s, now_us);
		/* A paused stream is waiting on its peer, not idle. */
		if (idle > 0 && !c->paused && !c->closing &&
		    now_us - c->last_rx_us > idle) {
			log_stream(LOG_INFO, s, "idle-timeout",
			    "no data for %u s: closing",
			    wd->conf.server.idle_timeout);
			c->closing = true;
			s->state = "closing";
			lws_callback_on_writable(c->wsi);
		}
	}
}
