/*
 * server.c — the hashing server: what every server stream shares, and the
 * streams lws frames (TLS listeners, or server.framing = "lws").
 *
 * payload -> batcher (running digest, cut at batch boundaries) -> digest
 * queue -> one text message each.  Plain listeners get their payload
 * from wsserver.c, lws-framed streams from RECEIVE here.
 *
 * Hashing is synchronous, so TCP backpressure is automatic: the socket is
 * read only when we are done with the last chunk.  The only thing that
 * can pile up is digests for a peer that does not read them; reading
 * stops at a high-water mark and resumes when the queue drains.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "server.h"

int
server_path_mode(const char *path, enum wsflow_mode *mode)
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

/*
 * What lws 4.1.6 does not check of an upgrade (RFC 6455 §4.2.1): the
 * version must be 13 and the key 16 octets in base64.
 */
static bool
upgrade_valid(struct lws *wsi)
{
	char buf[64], key[32];

	if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_VERSION) <= 0 ||
	    strcmp(buf, "13") != 0)
		return false;
	if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_KEY) != 24)
		return false;
	return lws_b64_decode_string(buf, key, sizeof(key)) == 16;
}

void
server_peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	buf[0] = '\0';
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == -1)
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

	if (c->qlen == c->qcap)		/* cannot happen: see allowance */
		return -1;
	memcpy(c->queue + (size_t)((c->qhead + c->qlen) % c->qcap) * len, md,
	    len);
	c->qlen++;
	return 0;
}

int
server_conn_open(struct server_conn *c, struct worker *w, struct lws *wsi,
    enum wsflow_mode mode)
{
	uint64_t batch;

	c->w = w;
	c->wsi = wsi;
	/* Frame and message modes cut by hand: no batch ever completes. */
	batch = mode == MODE_STREAMING ? w->params.batch_size : UINT64_MAX;
	if (batcher_init(&c->b, w->params.md, batch) == -1)
		return -1;
	/* Bounded in octets, whatever the batch size: chunks are cut to
	 * fit (server_conn_allowance). */
	c->qcap = QUEUE_CAP;
	if ((c->queue = malloc((size_t)c->qcap * c->b.md_len)) == NULL) {
		batcher_free(&c->b);
		return -1;
	}
	server_peer_name(lws_get_socket_fd(wsi), c->s.peer, sizeof(c->s.peer));
	stream_set_state(&c->s, "open");
	stream_register(w, &c->s, 0, ROLE_SERVER, mode);
	c->open = true;
	c->last_rx_us = lws_now_usecs();
	STAT_ADD(w->server.connections, 1);
	STAT_ADD(w->server.connections_total, 1);
	log_stream(LOG_INFO, &c->s, "stream-open", "%s stream from %s",
	    conf_mode_name(mode), c->s.peer);
	if (w->wd->stopping)	/* raced with a stop: say goodbye at once */
		server_stream_close(&c->s);
	return 0;
}

static int
conn_open(struct server_conn *c, struct lws *wsi)
{
	struct worker *w = lws_context_user(lws_get_context(wsi));
	char path[128];
	enum wsflow_mode mode = MODE_STREAMING;

	if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) > 0)
		(void)server_path_mode(path, &mode);
	return server_conn_open(c, w, wsi, mode);
}

void
server_conn_close(struct server_conn *c)
{
	struct worker *w = c->w;

	if (!c->open)
		return;
	c->open = false;
	STAT_SET(w->server.connections, STAT_GET(w->server.connections) - 1);
	log_stream(LOG_INFO, &c->s, "stream-close",
	    "closed: %llu bytes, %llu messages, %llu digests sent",
	    (unsigned long long)STAT_GET(c->s.st.bytes),
	    (unsigned long long)STAT_GET(c->s.st.messages),
	    (unsigned long long)STAT_GET(c->s.st.digests));
	stream_unregister(w, &c->s);
	batcher_free(&c->b);
	free(c->queue);
	c->queue = NULL;
	free(c->rest.buf);
	c->rest.buf = NULL;
}

/*
 * How many of len payload octets may be fed now without overflowing the
 * digest queue: a chunk crosses a batch boundary every batch_size octets
 * (at batch_size = 1, one per octet), and frame and message modes give
 * at most one digest a chunk.
 */
size_t
server_conn_allowance(const struct server_conn *c, size_t len)
{
	uint64_t batch = c->b.batch_size, room = c->qcap - c->qlen, allow;

	if (room == 0)
		return 0;
	if (c->s.mode != MODE_STREAMING || batch >= len)
		return len;		/* one boundary at most */
	/* floor((fill + allow) / batch) boundaries, at most room. */
	allow = room * batch - c->b.fill;
	return allow < len ? (size_t)allow : len;
}

/* Payload of a message; flags as wsparse.h's WS_CHUNK_*. */
int
server_conn_data(struct server_conn *c, const void *in, size_t len,
    unsigned flags)
{
	struct worker *w = c->w;
	uint8_t md[EVP_MAX_MD_SIZE];

	if ((flags & WS_CHUNK_FIRST) && batcher_begin(&c->b) == -1)
		return -1;
	STAT_ADD(c->s.st.bytes, len);
	STAT_ADD(w->server.bytes_received, len);
	c->last_rx_us = lws_now_usecs();
	if (batcher_feed(&c->b, in, len, enqueue, c) == -1)
		return -1;
	switch (c->s.mode) {
	case MODE_FRAME:
		/* The frame ends with this chunk (an empty frame too). */
		if ((flags & WS_CHUNK_FRAME_END) &&
		    (batcher_running(&c->b, md) == -1 ||
		    enqueue(c, md, c->b.md_len) == -1))
			return -1;
		break;
	case MODE_MESSAGE:
		if ((flags & WS_CHUNK_MESSAGE_END) &&
		    (batcher_final(&c->b, md) == -1 ||
		    enqueue(c, md, c->b.md_len) == -1))
			return -1;
		break;
	default:
		break;
	}
	if (flags & WS_CHUNK_MESSAGE_END)
		STAT_ADD(c->s.st.messages, 1);
	return 0;
}

/* The peer is not reading its digests: stop reading its data. */
void
server_conn_pause(struct server_conn *c)
{
	c->paused = true;
	c->paused_at_us = lws_now_usecs();
	STAT_ADD(c->s.st.bp_pauses, 1);
	stream_set_state(&c->s, "paused");
}

void
server_conn_resumed(struct server_conn *c)
{
	c->paused = false;
	STAT_ADD(c->s.st.bp_usec, lws_now_usecs() - c->paused_at_us);
	stream_set_state(&c->s, c->closing ? "closing" : "open");
}

/* The oldest queued digest went out as hex. */
void
server_conn_digest_sent(struct server_conn *c, const char *hex,
    unsigned hexlen)
{
	stream_set_digest(&c->s, hex, hexlen);
	c->qhead = (c->qhead + 1) % c->qcap;
	c->qlen--;
	STAT_ADD(c->s.st.digests, 1);
	STAT_ADD(c->w->server.digests_sent, 1);
}

/*
 * Feed what lws gave, as much as the digest queue has room for; the rest
 * waits in c->rest (one read at most) until digests have gone out.
 */
static int
feed_lws(struct server_conn *c, const uint8_t *in, size_t len, unsigned flags)
{
	size_t n = server_conn_allowance(c, len);
	bool from_rest = c->rest.buf != NULL && in == c->rest.buf + c->rest.off;

	if ((n > 0 || len == 0) && server_conn_data(c, in, n,
	    n < len ? flags & WS_CHUNK_FIRST : flags) == -1)
		return -1;
	if (n == len) {
		if (from_rest) {
			free(c->rest.buf);
			c->rest.buf = NULL;
		}
		return 0;
	}
	if (n > 0)
		flags &= ~WS_CHUNK_FIRST;
	if (from_rest) {
		c->rest.off += n;
		c->rest.flags = flags;
		return 0;
	}
	if (c->rest.buf != NULL)	/* cannot happen: rx is off meanwhile */
		return -1;
	if ((c->rest.buf = malloc(len - n)) == NULL)
		return -1;
	memcpy(c->rest.buf, in + n, len - n);
	c->rest.len = len - n;
	c->rest.off = 0;
	c->rest.flags = flags;
	return 0;
}

static int
conn_receive(struct server_conn *c, struct lws *wsi, const void *in,
    size_t len)
{
	unsigned flags = 0;

	if (lws_is_first_fragment(wsi))
		flags |= WS_CHUNK_FIRST;
	if (lws_remaining_packet_payload(wsi) == 0)
		flags |= WS_CHUNK_FRAME_END;
	if (lws_is_final_fragment(wsi))
		flags |= WS_CHUNK_MESSAGE_END;
	if (feed_lws(c, in, len, flags) == -1)
		return -1;
	if (c->qlen > 0)
		lws_callback_on_writable(wsi);
	if ((c->qlen >= QUEUE_HIGH || c->rest.buf != NULL) && !c->paused) {
		/* The rest of this read is kept by lws and replayed later. */
		server_conn_pause(c);
		lws_rx_flow_control(wsi, 0);
	}
	return 0;
}

/* The oldest queued digest, as one text message. */
static int
send_digest(struct server_conn *c, struct lws *wsi)
{
	unsigned len = c->b.md_len;
	char *hex = (char *)c->tx + LWS_PRE;

	digest_hex(c->queue + (size_t)c->qhead * len, len, hex);
	if (lws_write(wsi, c->tx + LWS_PRE, 2 * len, LWS_WRITE_TEXT) <
	    (int)(2 * len))
		return -1;
	server_conn_digest_sent(c, hex, 2 * len);
	return 0;
}

static int
conn_writeable(struct server_conn *c, struct lws *wsi)
{
	if (c->closing) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY,
		    (unsigned char *)"shutting down", 13);
		return -1;
	}
	if (c->qlen == 0)
		return 0;
	if (send_digest(c, wsi) == -1)
		return -1;
	if (c->rest.buf != NULL && feed_lws(c, c->rest.buf + c->rest.off,
	    c->rest.len - c->rest.off, c->rest.flags) == -1)
		return -1;
	if (c->qlen > 0)
		lws_callback_on_writable(wsi);
	if (c->paused && c->rest.buf == NULL && c->qlen <= QUEUE_LOW) {
		server_conn_resumed(c);
		lws_rx_flow_control(wsi, 1 | LWS_RXFLOW_REASON_FLAG_PROCESS_NOW);
	}
	return 0;
}

static int
server_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	struct server_conn *c = user;
	struct worker *w;
	enum wsflow_mode mode;
	char path[128];

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		w = lws_context_user(lws_get_context(wsi));
		return http_serve(w, wsi, in);

	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* Refuse upgrades to paths that name no mode. */
		if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <=
		    0 || server_path_mode(path, &mode) == -1)
			return 1;
		return upgrade_valid(wsi) ? 0 : 1;

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		/*
		 * The peer is done: digests still queued are owed to it and
		 * may precede our close (RFC 6455 §5.5.1).  A handful at most
		 * (the queue is bounded), so writing them here is safe.
		 */
		while (c != NULL && c->open && c->qlen > 0)
			if (send_digest(c, wsi) == -1)
				break;
		return 0;

	case LWS_CALLBACK_ESTABLISHED:
		return conn_open(c, wsi);

	case LWS_CALLBACK_RECEIVE:
		return c->open ? conn_receive(c, wsi, in, len) : -1;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		return c->open ? conn_writeable(c, wsi) : 0;

	case LWS_CALLBACK_CLOSED:
		if (c != NULL)
			server_conn_close(c);
		return 0;

	/*
	 * lws tells protocols[0] of a vhost of every wsi it creates and
	 * destroys there; a worker's listener vhosts hold nothing but
	 * accepted sockets, upgraded or not, in whatever state they died.
	 */
	case LWS_CALLBACK_WSI_CREATE:
		w = lws_context_user(lws_get_context(wsi));
		atomic_fetch_add(&w->wd->sockets, 1);
		atomic_fetch_add(&w->load, 1);
		return 0;

	case LWS_CALLBACK_WSI_DESTROY:
		if (c != NULL)
			server_conn_close(c);
		w = lws_context_user(lws_get_context(wsi));
		atomic_fetch_sub(&w->wd->sockets, 1);
		atomic_fetch_sub(&w->load, 1);
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

	if (c->raw) {
		wsserver_close(c, WS_CLOSE_GOING_AWAY, "shutting down");
		return;
	}
	c->closing = true;
	stream_set_state(s, "closing");
	/* Every close has a deadline, read or not by the peer. */
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND,
	    WSFLOW_CLOSE_DEADLINE_SECS);
	lws_callback_on_writable(c->wsi);
}

void
server_stop_all(struct worker *w)
{
	struct stream *s;

	TAILQ_FOREACH(s, &w->streams, wentry)
		if (s->role == ROLE_SERVER)
			server_stream_close(s);
}

/* Once a second: rates, and idle streams sent away. */
void
server_tick(struct worker *w, int64_t now_us)
{
	int64_t idle = (int64_t)w->params.idle_timeout * LWS_US_PER_SEC;
	struct stream *s;

	TAILQ_FOREACH(s, &w->streams, wentry) {
		struct server_conn *c;

		if (s->role != ROLE_SERVER)
			continue;
		c = conn_of(s);
		stream_sample_rate(s, now_us);
		if (c->raw)
			wsserver_tick(c, now_us);
		/*
		 * A paused stream waits for its peer to read its digests:
		 * not idle, unless the peer has stopped reading for as long.
		 */
		if (idle > 0 && c->paused && !c->closing &&
		    now_us - c->paused_at_us > idle) {
			log_stream(LOG_INFO, s, "idle-timeout", "peer has read "
			    "no digest for %u s: closing",
			    w->params.idle_timeout);
			server_stream_close(s);
		} else if (idle > 0 && !c->paused && !c->closing &&
		    now_us - c->last_rx_us > idle) {
			log_stream(LOG_INFO, s, "idle-timeout",
			    "no data for %u s: closing", w->params.idle_timeout);
			server_stream_close(s);
		}
	}
}
