/*
 * serverlws.c — the server adapter for connections lws frames: TLS
 * listeners, and every listener under server.framing = "lws" (kept as a
 * reference for wsflowd's own framing).
 *
 * lws parses the handshake and the frames and hands payload to RECEIVE;
 * this file feeds it to the core, as much as the digest queue can hold
 * (the rest of a read waits in c->rest), and writes one digest per
 * WRITEABLE.  Plain HTTP (/healthz, /metrics, the page) goes to http.c;
 * a /live viewer gets live.c's snapshot once a second.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "http.h"
#include "live.h"
#include "log.h"
#include "server.h"
#include "worker.h"
#include "ws.h"

struct lws_conn {
	struct server_conn c;		/* first: the core's, the registry's */
	struct {			/* payload not yet fed */
		uint8_t	*buf;
		size_t	 len, off;
		unsigned flags;		/* of its last octet */
	}		 rest;
	const char	*close_why;	/* said at the WRITEABLE */
	uint8_t		 tx[LWS_PRE + 2 * EVP_MAX_MD_SIZE + 1];	/* + NUL */
	/* A /live viewer: no stream, this second's snapshot when writable
	 * (a newer one replaces one not yet out). */
	struct {
		bool		 on;
		struct lws	*wsi;
		struct live_snap *snap;
		uint8_t		*buf;		/* LWS_PRE + the snapshot */
		size_t		 cap;
		uint16_t	 close_code;	/* 0, or owed at WRITEABLE */
		int64_t		 unsent_since;	/* a snapshot waits, 0: none */
		lws_sorted_usec_list_t sul;
	}		 live;
};

int
serverlws_adopt(struct lws_vhost *vh, int fd)
{
	/* On failure lws has closed fd. */
	return lws_adopt_socket_vhost(vh, fd) == NULL ? -1 : 0;
}

/* The core's close: 1001 at the next WRITEABLE, within the deadline. */
static void
lws_conn_close(struct server_conn *c, uint16_t code, const char *why)
{
	(void)code;		/* always 1001: going away */
	((struct lws_conn *)c)->close_why = why;	/* a string literal */
	c->closing = true;
	stream_set_state(&c->s, "closing");
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND,
	    WSFLOW_CLOSE_DEADLINE_SECS);
	lws_callback_on_writable(c->wsi);
}

static const struct server_io lws_io = {
	.close = lws_conn_close,
};

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

/*
 * Say who was refused and why: lws only says "User code denied
 * connection" (log.c keeps that at debug), without peer or path.
 */
static int
refuse(struct lws *wsi, unsigned status, const char *path, const char *why)
{
	char peer[128];

	server_peer_name(lws_get_socket_fd(wsi), peer, sizeof(peer));
	log_ratelimited(LOG_INFO, "refused an upgrade from %s to %.64s: "
	    "%u %s", peer, path, status, why);
	/* An HTTP answer, not a bare drop (interface.md §1). */
	(void)lws_return_http_status(wsi, status, NULL);
	return 1;
}

/* Once a second: the snapshot, or the end (stop, dashboard off). */
static void
live_tick(lws_sorted_usec_list_t *sul)
{
	struct lws_conn *lc = lws_container_of(sul, struct lws_conn, live.sul);
	struct worker *w = lws_context_user(lws_get_context(lc->live.wsi));
	struct live_snap *snap;
	int64_t now = lws_now_usecs();

	if (lc->live.close_code != 0)
		return;
	/* A viewer that reads nothing holds its slot idle_timeout at most,
	 * as under wsflowd's framing; lws cannot send it a close either. */
	if (lc->live.unsent_since != 0 && w->params.idle_timeout > 0 &&
	    now - lc->live.unsent_since >
	    (int64_t)w->params.idle_timeout * LWS_US_PER_SEC) {
		lws_set_timeout(lc->live.wsi, PENDING_TIMEOUT_USER_OK,
		    LWS_TO_KILL_ASYNC);
		return;
	}
	if (w->wd->stopping || !w->params.dashboard) {
		lc->close_why = w->wd->stopping ? "wsflowd stopping" :
		    "dashboard turned off";
		lc->live.close_code = WS_CLOSE_GOING_AWAY;
	} else if ((snap = live_get(w->wd, now)) != NULL) {
		live_put(lc->live.snap);
		lc->live.snap = snap;
		if (lc->live.unsent_since == 0)
			lc->live.unsent_since = now;
	}
	lws_callback_on_writable(lc->live.wsi);
	if (lc->live.close_code == 0)
		lws_sul_schedule(lws_get_context(lc->live.wsi), 0, &lc->live.sul,
		    live_tick, LWS_US_PER_SEC);
}

static int
live_writeable(struct lws_conn *lc, struct lws *wsi)
{
	struct live_snap *s = lc->live.snap;

	if (lc->live.close_code != 0) {
		lws_close_reason(wsi, (enum lws_close_status)lc->live.close_code,
		    (unsigned char *)(uintptr_t)lc->close_why,
		    strlen(lc->close_why));
		return -1;
	}
	if (s == NULL)
		return 0;
	/* lws wants LWS_PRE octets before what it frames: one copy. */
	if (lc->live.cap < LWS_PRE + s->len) {
		uint8_t *nb = realloc(lc->live.buf, LWS_PRE + s->len);

		if (nb == NULL)
			return -1;
		lc->live.buf = nb;
		lc->live.cap = LWS_PRE + s->len;
	}
	memcpy(lc->live.buf + LWS_PRE, s->json, s->len);
	lc->live.snap = NULL;
	lc->live.unsent_since = 0;
	live_put(s);
	return lws_write(wsi, lc->live.buf + LWS_PRE, s->len, LWS_WRITE_TEXT) <
	    0 ? -1 : 0;
}

static void
live_end(struct lws_conn *lc)
{
	if (!lc->live.on)
		return;
	lws_sul_cancel(&lc->live.sul);
	live_put(lc->live.snap);
	lc->live.snap = NULL;
	free(lc->live.buf);
	lc->live.buf = NULL;
	lc->live.on = false;
}

static int
conn_open(struct lws_conn *lc, struct lws *wsi)
{
	struct worker *w = lws_context_user(lws_get_context(wsi));
	char path[128];
	enum wsflow_mode mode = MODE_STREAMING;

	if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) > 0 &&
	    server_path_is(path, "/live")) {
		/* A viewer, not a stream: the first snapshot at once. */
		lc->live.on = true;
		lc->live.wsi = wsi;
		lws_sul_schedule(lws_get_context(wsi), 0, &lc->live.sul,
		    live_tick, 1);
		return 0;
	}
	if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) > 0)
		(void)server_path_mode(path, &mode);
	return server_conn_open(&lc->c, w, wsi, mode, &lws_io);
}

static void
conn_close(struct lws_conn *lc)
{
	server_conn_close(&lc->c);
	free(lc->rest.buf);
	lc->rest.buf = NULL;
}

/*
 * Feed what lws gave, as much as the digest queue has room for; the rest
 * waits in lc->rest (one read at most) until digests have gone out.
 */
static int
feed(struct lws_conn *lc, const uint8_t *in, size_t len, unsigned flags)
{
	struct server_conn *c = &lc->c;
	size_t n = server_conn_allowance(c, len);
	bool from_rest = lc->rest.buf != NULL &&
	    in == lc->rest.buf + lc->rest.off;

	if ((n > 0 || len == 0) && server_conn_data(c, in, n,
	    n < len ? flags & WS_CHUNK_FIRST : flags) == -1)
		return -1;
	if (n == len) {
		if (from_rest) {
			free(lc->rest.buf);
			lc->rest.buf = NULL;
		}
		return 0;
	}
	if (n > 0)
		flags &= ~WS_CHUNK_FIRST;
	if (from_rest) {
		lc->rest.off += n;
		lc->rest.flags = flags;
		return 0;
	}
	if (lc->rest.buf != NULL)	/* cannot happen: rx is off meanwhile */
		return -1;
	if ((lc->rest.buf = malloc(len - n)) == NULL)
		return -1;
	memcpy(lc->rest.buf, in + n, len - n);
	lc->rest.len = len - n;
	lc->rest.off = 0;
	lc->rest.flags = flags;
	return 0;
}

static int
conn_receive(struct lws_conn *lc, struct lws *wsi, const void *in,
    size_t len)
{
	struct server_conn *c = &lc->c;
	unsigned flags = 0;

	if (lws_is_first_fragment(wsi))
		flags |= WS_CHUNK_FIRST;
	if (lws_remaining_packet_payload(wsi) == 0)
		flags |= WS_CHUNK_FRAME_END;
	if (lws_is_final_fragment(wsi))
		flags |= WS_CHUNK_MESSAGE_END;
	if (feed(lc, in, len, flags) == -1)
		return -1;
	if (c->qlen > 0)
		lws_callback_on_writable(wsi);
	if ((c->qlen >= QUEUE_HIGH || lc->rest.buf != NULL) && !c->paused) {
		/* The rest of this read is kept by lws and replayed later. */
		server_conn_pause(c);
		lws_rx_flow_control(wsi, 0);
	}
	return 0;
}

/* The oldest queued digest, as one text message. */
static int
send_digest(struct lws_conn *lc, struct lws *wsi)
{
	char *hex = (char *)lc->tx + LWS_PRE;
	unsigned n = server_conn_next_digest(&lc->c, hex);

	if (n == 0)
		return 0;
	if (lws_write(wsi, lc->tx + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n)
		return -1;
	server_conn_digest_sent(&lc->c, hex, n);
	return 0;
}

static int
conn_writeable(struct lws_conn *lc, struct lws *wsi)
{
	struct server_conn *c = &lc->c;

	if (c->closing) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY,
		    (unsigned char *)(uintptr_t)lc->close_why,
		    strlen(lc->close_why));
		return -1;
	}
	if (c->qlen == 0)
		return 0;
	if (send_digest(lc, wsi) == -1)
		return -1;
	if (lc->rest.buf != NULL && feed(lc, lc->rest.buf + lc->rest.off,
	    lc->rest.len - lc->rest.off, lc->rest.flags) == -1)
		return -1;
	if (c->qlen > 0)
		lws_callback_on_writable(wsi);
	if (c->paused && lc->rest.buf == NULL && c->qlen <= QUEUE_LOW) {
		server_conn_resumed(c);
		lws_rx_flow_control(wsi, 1 | LWS_RXFLOW_REASON_FLAG_PROCESS_NOW);
	}
	return 0;
}

static int
serverlws_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	struct lws_conn *lc = user;
	enum wsflow_mode mode;
	char path[128], origin[256];

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		/* The live page obeys server.origins, as upgrades do. */
		if (in != NULL && strcmp(in, "/") == 0) {
			if (lws_hdr_copy(wsi, origin, sizeof(origin),
			    WSI_TOKEN_ORIGIN) < 0)
				origin[0] = '\0';
			if (!server_origin_allowed(&((struct worker *)
			    lws_context_user(lws_get_context(wsi)))->params,
			    origin)) {
				(void)lws_return_http_status(wsi, 403, NULL);
				return -1;
			}
		}
		return http_serve(lws_context_user(lws_get_context(wsi)), wsi,
		    in);

	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* Refuse upgrades to paths that name no mode. */
		if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <=
		    0)
			return refuse(wsi, 400, "?", "no path");
		if (server_path_is(path, "/live") ? !((struct worker *)
		    lws_context_user(lws_get_context(wsi)))->params.dashboard :
		    server_path_mode(path, &mode) == -1)
			return refuse(wsi, 404, path, "no WebSocket endpoint at "
			    "this path");
		if (lws_hdr_copy(wsi, origin, sizeof(origin),
		    WSI_TOKEN_ORIGIN) < 0)
			origin[0] = '\0';
		if (!server_origin_allowed(&((struct worker *)
		    lws_context_user(lws_get_context(wsi)))->params, origin))
			return refuse(wsi, 403, path, "Origin not allowed");
		return upgrade_valid(wsi) ? 0 : refuse(wsi, 400, path, "bad "
		    "Sec-WebSocket-Version or Sec-WebSocket-Key");

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		/*
		 * The peer is done: digests still queued are owed to it and
		 * may precede our close (RFC 6455 §5.5.1).  A handful at most
		 * (the queue is bounded), so writing them here is safe.
		 */
		while (lc != NULL && lc->c.open && lc->c.qlen > 0)
			if (send_digest(lc, wsi) == -1)
				break;
		return 0;

	case LWS_CALLBACK_ESTABLISHED:
		return conn_open(lc, wsi);

	case LWS_CALLBACK_RECEIVE:
		if (lc->live.on) {
			/* Read-only: whatever a viewer sends changes nothing. */
			lc->close_why = "/live is read-only";
			lc->live.close_code = WS_CLOSE_POLICY;
			lws_callback_on_writable(wsi);
			return 0;
		}
		return lc->c.open ? conn_receive(lc, wsi, in, len) : -1;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (lc->live.on)
			return live_writeable(lc, wsi);
		return lc->c.open ? conn_writeable(lc, wsi) : 0;

	case LWS_CALLBACK_CLOSED:
		if (lc != NULL) {
			live_end(lc);
			conn_close(lc);
		}
		return 0;

	/*
	 * lws tells protocols[0] of a vhost of every wsi it creates and
	 * destroys there; this adapter's vhosts hold nothing but accepted
	 * sockets, upgraded or not, in whatever state they died.
	 */
	case LWS_CALLBACK_WSI_CREATE:
		server_socket_count(lws_context_user(lws_get_context(wsi)), 1);
		return 0;

	case LWS_CALLBACK_WSI_DESTROY:
		if (lc != NULL) {
			live_end(lc);
			conn_close(lc);
		}
		server_socket_count(lws_context_user(lws_get_context(wsi)), -1);
		return 0;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

const struct lws_protocols serverlws_protocol = {
	.name = "wsflow",
	.callback = serverlws_callback,
	.per_session_data_size = sizeof(struct lws_conn),
	.rx_buffer_size = WSFLOW_RX_CHUNK,
};
