/*
 * server.c — the hashing server's core: what every server stream does,
 * whichever adapter frames it (server.h).
 *
 * payload -> batcher (running digest, cut at batch boundaries) -> digest
 * queue; the adapter sends each as one text message.  Hashing is
 * synchronous, so TCP backpressure is automatic: the socket is read only
 * when we are done with the last chunk.  The only thing that can pile up
 * is digests for a peer that does not read them: input is cut to what
 * the queue can hold, and reading stops at a high-water mark until the
 * queue drains.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon.h"
#include "log.h"
#include "server.h"
#include "url.h"
#include "worker.h"
#include "ws.h"

/* The path, without its query, is this. */
bool
server_path_is(const char *path, const char *what)
{
	size_t n = strcspn(path, "?");

	return n == strlen(what) && strncmp(path, what, n) == 0;
}

int
server_path_mode(const char *path, enum wsflow_mode *mode)
{
	if (server_path_is(path, "/") || server_path_is(path, "/stream"))
		*mode = MODE_STREAMING;
	else if (server_path_is(path, "/frame"))
		*mode = MODE_FRAME;
	else if (server_path_is(path, "/message"))
		*mode = MODE_MESSAGE;
	else
		return -1;
	return 0;
}

void
server_peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	int port;

	buf[0] = '\0';
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == -1 ||
	    addr_format(&ss, false, host, sizeof(host), &port) == -1)
		return;
	snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
	    host, port);
}

/* May a page from this Origin stream here?  No Origin: not a browser. */
bool
server_origin_allowed(const struct server_params *p, const char *origin)
{
	size_t n = strlen(origin);

	if (p->origins == NULL || *origin == '\0')
		return true;
	for (const char *l = p->origins; *l != '\0'; l += strcspn(l, "\n"),
	    l += *l == '\n') {
		size_t len = strcspn(l, "\n");

		if (len == n && strncasecmp(l, origin, n) == 0)
			return true;
	}
	return false;
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

/* The adapters' sockets, upgraded or not, in whatever state they die. */
void
server_socket_count(struct worker *w, int delta)
{
	if (delta > 0) {
		atomic_fetch_add(&w->wd->reg.sockets, 1);
		atomic_fetch_add(&w->load, 1);
	} else {
		atomic_fetch_sub(&w->wd->reg.sockets, 1);
		atomic_fetch_sub(&w->load, 1);
	}
}

static const struct stream_ops server_ops;
static void	server_stop(struct stream *, bool going_away);

int
server_conn_open(struct server_conn *c, struct worker *w, struct lws *wsi,
    enum wsflow_mode mode, const struct server_io *io)
{
	uint64_t batch;

	c->w = w;
	c->wsi = wsi;
	c->io = io;
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
	worker_stream_add(w, &c->s, ROLE_SERVER, mode, &server_ops);
	/* One of our own producers at the other end? (run's receiver) */
	stream_link_find(&w->wd->reg, &c->s, lws_get_socket_fd(wsi));
	c->open = true;
	c->last_rx_us = lws_now_usecs();
	STAT_ADD(w->totals.connections, 1);
	STAT_ADD(w->totals.connections_total, 1);
	log_stream(LOG_INFO, &c->s, "stream-open", "%s stream from %s",
	    wsflow_mode_name(mode), c->s.peer);
	if (w->wd->stopping)	/* raced with a stop: say goodbye at once */
		server_stop(&c->s, true);
	return 0;
}

void
server_conn_close(struct server_conn *c)
{
	struct worker *w = c->w;

	if (!c->open)
		return;
	c->open = false;
	STAT_SET(w->totals.connections, STAT_GET(w->totals.connections) - 1);
	/* Nothing else said why: the client ended it. */
	stream_set_end(&c->s, STREAM_FINISHED, "client closed", NULL);
	log_stream_end(LOG_INFO, &c->s,
	    "closed: %llu bytes, %llu message%s, %llu digest%s sent",
	    (unsigned long long)STAT_GET(c->s.st.bytes),
	    (unsigned long long)STAT_GET(c->s.st.messages),
	    STAT_GET(c->s.st.messages) == 1 ? "" : "s",
	    (unsigned long long)STAT_GET(c->s.st.digests),
	    STAT_GET(c->s.st.digests) == 1 ? "" : "s");
	worker_stream_remove(w, &c->s);
	batcher_free(&c->b);
	free(c->queue);
	c->queue = NULL;
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

/* Payload of a message; flags as ws.h's WS_CHUNK_*. */
int
server_conn_data(struct server_conn *c, const void *in, size_t len,
    unsigned flags)
{
	struct worker *w = c->w;
	uint8_t md[EVP_MAX_MD_SIZE];

	if ((flags & WS_CHUNK_FIRST) && batcher_begin(&c->b) == -1)
		return -1;
	STAT_ADD(c->s.st.bytes, len);
	STAT_ADD(w->totals.bytes_received, len);
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

unsigned
server_conn_next_digest(const struct server_conn *c,
    char hex[2 * EVP_MAX_MD_SIZE + 1])
{
	unsigned len = c->b.md_len;

	if (!c->open || c->qlen == 0)
		return 0;
	digest_hex(c->queue + (size_t)c->qhead * len, len, hex);
	hex[2 * len] = '\0';
	return 2 * len;
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
	STAT_ADD(c->w->totals.digests_sent, 1);
}

/* ---- the operations a worker asks of a server stream ---- */

static void
server_stop(struct stream *s, bool going_away)
{
	struct server_conn *c = (struct server_conn *)s;

	/* A server stream always goes away (1001). */
	stream_set_end(s, STREAM_STOPPED, going_away ? "shutdown" : "stopped",
	    NULL);
	c->io->close(c, WS_CLOSE_GOING_AWAY, "shutting down");
}

/* Once a second: rates, and idle streams sent away. */
static void
server_tick(struct stream *s, int64_t now_us)
{
	struct server_conn *c = (struct server_conn *)s;
	int64_t idle = (int64_t)c->w->params.idle_timeout * LWS_US_PER_SEC;

	stream_sample_rate(s, now_us);
	if (c->io->tick != NULL)
		c->io->tick(c, now_us);
	/*
	 * A paused stream waits for its peer to read its digests: not idle,
	 * unless the peer has stopped reading for as long.
	 */
	if (idle > 0 && c->paused && !c->closing &&
	    now_us - c->paused_at_us > idle) {
		log_stream(LOG_INFO, s, "idle-timeout", "peer has read no "
		    "digest for %u s: closing", c->w->params.idle_timeout);
		stream_set_end(s, STREAM_FAILED, "idle timeout",
		    "the client read no digest");
		c->io->close(c, WS_CLOSE_GOING_AWAY, "idle timeout");
	} else if (idle > 0 && !c->paused && !c->closing &&
	    now_us - c->last_rx_us > idle) {
		log_stream(LOG_INFO, s, "idle-timeout", "no frame for %u s: "
		    "closing", c->w->params.idle_timeout);
		stream_set_end(s, STREAM_FAILED, "idle timeout",
		    "the client sent no frame");
		c->io->close(c, WS_CLOSE_GOING_AWAY, "idle timeout");
	}
}

static const struct stream_ops server_ops = {
	.stop = server_stop,
	.tick = server_tick,
};
