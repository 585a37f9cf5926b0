/*
 * wsserver.c — the server adapter for connections wsflowd frames itself:
 * every listener, plain or TLS (OpenSSL on the socket, tls.c), unless
 * framing = "lws".
 *
 * socket -> read() (or SSL_read) into the worker's buffer -> ws.c (unmask
 * in place, wide) -> the core (server.c: batcher -> digest queue) ->
 * send() (or SSL_write).  lws still runs the loop:
 * the socket is adopted as a RAW_FILE descriptor, so lws only polls it
 * (docs/lws.md §3) and times it out.  Every request is answered here:
 * a 101, or an HTTP answer (http.c) after which the connection ends; a
 * request body is never read (upgrade.h).
 *
 * A stream ends with a close frame and then a lingering close: our FIN,
 * then reading until the peer's, so that our last frame is never lost to
 * a reset.  Every close has a deadline (WSFLOW_CLOSE_DEADLINE_SECS), and
 * so does every HTTP answer: a peer that does not read cannot hold its
 * slot.
 */
#include <sys/socket.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "daemon.h"
#include "http.h"
#include "live.h"
#include "log.h"
#include "server.h"
#include "upgrade.h"
#include "worker.h"
#include "ws.h"

#define CLOSE_WAIT_SECS		3	/* for the peer's close frame */
#define LINGER_SECS		2	/* for the peer's FIN */
#define FLUSH_WAIT_SECS		10	/* for the peer to read our close */
#define LOWAT_MIN		(16 * 1024)
#define LOWAT_MAX		WSFLOW_RX_CHUNK

/* The adapter's side of a connection, behind the core's. */
struct own_conn {
	struct server_conn c;		/* first: the core's, the registry's */
	struct ws_raw {
		int		 fd;
		SSL		*ssl;		/* TLS listeners: OpenSSL on fd */
		bool		 tls_want_write; /* a read waits for POLLOUT */
		bool		 rx_pending;	/* TLS holds input poll won't see */
		bool		 in_writeable;	/* inside RAW_WRITEABLE_FILE */
		lws_sorted_usec_list_t sul_write;	/* want_write from it */
		char		*head;		/* handshake octets so far */
		size_t		 head_len;
		struct ws_parser parser;
		uint8_t		*held;	/* input not parsed while paused */
		size_t		 held_len, held_off;
		char		*answer;	/* an HTTP answer (not a 101) */
		size_t		 answer_len, answer_off;
		uint8_t		 out[4 * (WS_SERVER_HEADER_MAX +
				    2 * EVP_MAX_MD_SIZE)];
		unsigned	 out_len, out_off;
		uint8_t		 pong[WS_CONTROL_MAX];
		unsigned	 pong_len;
		bool		 pong_due;
		bool		 upgraded;
		bool		 close_sent;	/* ours is out: read until theirs */
		bool		 hangup;	/* over: FIN after the output */
		bool		 lingering;	/* FIN sent: read until theirs */
		bool		 reading;	/* rx flow on */
		int		 lowat;		/* SO_RCVLOWAT set, 0: never */
		uint16_t	 close_code;	/* owed after the digests */
		uint8_t		 close_payload[WS_CONTROL_MAX];
		unsigned	 close_len;
		/* A /live viewer: no stream, one snapshot a second. */
		bool		 live;
		struct live_snap *snap;		/* going out */
		size_t		 snap_off;
		int64_t		 snap_at_us;	/* since when */
		struct live_snap *snap_next;	/* due: a newer one replaces it */
		lws_sorted_usec_list_t sul_live;
	}		 r;
};

static const struct server_io own_io;
static void	want_write(struct own_conn *);
static int	on_data(void *, const uint8_t *, size_t, unsigned);
static int	on_control(void *, int, const uint8_t *, size_t);

static const struct ws_handler handler = {
	.data = on_data,
	.control = on_control,
};

/*
 * Adopt an accepted socket; with ssl_ctx (a TLS listener), TLS is spoken
 * on it by OpenSSL from the first octet.  On failure fd is closed.
 */
int
wsserver_adopt(struct lws_vhost *vh, int fd, SSL_CTX *ssl_ctx)
{
	lws_sock_file_fd_type desc;
	SSL *ssl = NULL;

	if (ssl_ctx != NULL && ((ssl = SSL_new(ssl_ctx)) == NULL ||
	    SSL_set_fd(ssl, fd) != 1)) {
		SSL_free(ssl);
		close(fd);
		return -1;
	}
	if (ssl != NULL)
		SSL_set_accept_state(ssl);
	desc.filefd = fd;
	/* On failure lws has closed fd. */
	if (lws_adopt_descriptor_vhost_via_info(&(lws_adopt_desc_t){
	    .vh = vh, .type = LWS_ADOPT_RAW_FILE_DESC, .fd = desc,
	    .vh_prot_name = wsserver_protocol.name, .opaque = ssl }) == NULL) {
		SSL_free(ssl);
		return -1;
	}
	return 0;
}

/*
 * Ask for a WRITEABLE.  lws 4.1.6 clears a raw file's POLLOUT after its
 * WRITEABLE callback returns (ops-raw-file.c), so a request made inside
 * one would be lost and a stream paused for a slow reader would stall:
 * from there, ask a millisecond later (docs/lws.md §3).
 */
static void
write_later(lws_sorted_usec_list_t *sul)
{
	struct own_conn *o = lws_container_of(sul, struct own_conn,
	    r.sul_write);

	lws_callback_on_writable(o->c.wsi);
}

static void
want_write(struct own_conn *o)
{
	if (!o->r.in_writeable)
		lws_callback_on_writable(o->c.wsi);
	else
		lws_sul_schedule(lws_get_context(o->c.wsi), 0, &o->r.sul_write,
		    write_later, LWS_US_PER_MS);
}

/* ---- the transport: the socket itself, or TLS over it ---- */

/* TLS I/O that cannot go on now: -2 (wait), or -1 (the peer is gone). */
static ssize_t
tls_blocked(struct own_conn *o, int rc)
{
	switch (SSL_get_error(o->r.ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return -2;
	case SSL_ERROR_WANT_WRITE:
		o->r.tls_want_write = true;	/* go on at POLLOUT */
		want_write(o);
		return -2;
	case SSL_ERROR_ZERO_RETURN:
		return 0;			/* close_notify: an end */
	default:
		ERR_clear_error();
		return -1;
	}
}

/* Octets read (> 0), 0 at the end, -2 for none now, -1 on error. */
static ssize_t
conn_read(struct own_conn *o, void *buf, size_t len)
{
	ssize_t n;

	if (o->r.ssl != NULL) {
		int rc = SSL_read(o->r.ssl, buf, len > INT_MAX ? INT_MAX :
		    (int)len);

		return rc > 0 ? rc : tls_blocked(o, rc);
	}
	n = read(o->r.fd, buf, len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return -2;
	return n;
}

/* Octets written (> 0), -2 for none now, -1 on error. */
static ssize_t
conn_write(struct own_conn *o, const void *buf, size_t len)
{
	ssize_t n;

	if (o->r.ssl != NULL) {
		int rc = SSL_write(o->r.ssl, buf, len > INT_MAX ? INT_MAX :
		    (int)len);

		if (rc > 0)
			return rc;
		return (n = tls_blocked(o, rc)) == 0 ? -1 : n;
	}
	n = send(o->r.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return -2;
	return n;
}

/* Write buf[*off, len): 1 all out, 0 wait for POLLOUT, -1 peer gone. */
static int
write_out(struct own_conn *o, const void *buf, size_t len, size_t *off)
{
	while (*off < len) {
		ssize_t n = conn_write(o, (const uint8_t *)buf + *off,
		    len - *off);

		if (n == -2) {
			want_write(o);
			return 0;
		}
		if (n <= 0)
			return -1;
		*off += (size_t)n;
	}
	return 1;
}

/* Our end of the stream: close_notify first under TLS, then FIN. */
static void
conn_shutdown(struct own_conn *o)
{
	if (o->r.ssl != NULL && SSL_is_init_finished(o->r.ssl))
		(void)SSL_shutdown(o->r.ssl);
	ERR_clear_error();
	shutdown(o->r.fd, SHUT_WR);
}

static void
raw_free(struct own_conn *o)
{
	free(o->r.head);
	o->r.head = NULL;
	free(o->r.held);
	o->r.held = NULL;
	free(o->r.answer);
	o->r.answer = NULL;
	live_put(o->r.snap);
	o->r.snap = NULL;
	live_put(o->r.snap_next);
	o->r.snap_next = NULL;
	SSL_free(o->r.ssl);
	o->r.ssl = NULL;
}

static void
rx_enable(struct own_conn *o, bool on)
{
	if (o->r.reading == on)
		return;
	o->r.reading = on;
	lws_rx_flow_control(o->c.wsi, on ? 1 : 0);
}

/* Queue a close frame after the digests owed; nothing is read after it. */
static void
queue_close(struct own_conn *o, uint16_t code, const uint8_t *payload,
    size_t len)
{
	if (o->r.close_code != 0 || o->r.close_sent)
		return;
	o->r.close_code = code;
	o->r.close_len = 0;
	if (payload != NULL) {
		memcpy(o->r.close_payload, payload, len);
		o->r.close_len = (unsigned)len;
	} else if (code != 0) {
		o->r.close_payload[0] = (uint8_t)(code >> 8);
		o->r.close_payload[1] = (uint8_t)code;
		o->r.close_len = 2;
	}
}

/* Server-initiated: stop, idle, daemon stop (1001), protocol errors. */
static void
wsserver_close(struct own_conn *o, uint16_t code, const char *why)
{
	uint8_t payload[2 + 64];
	size_t n = strlen(why);

	if (o->r.close_code != 0 || o->r.close_sent)
		return;
	if (n > sizeof(payload) - 2)
		n = sizeof(payload) - 2;
	payload[0] = (uint8_t)(code >> 8);
	payload[1] = (uint8_t)code;
	memcpy(payload + 2, why, n);
	queue_close(o, code, payload, 2 + n);
	o->c.closing = true;
	stream_set_state(&o->c.s, "closing");
	lws_set_timeout(o->c.wsi, PENDING_TIMEOUT_CLOSE_SEND,
	    WSFLOW_CLOSE_DEADLINE_SECS);
	want_write(o);
}

static bool
append(struct own_conn *o, int opcode, const void *payload, size_t len)
{
	struct ws_raw *r = &o->r;

	if (r->out_len + WS_SERVER_HEADER_MAX + len > sizeof(r->out))
		return false;
	r->out_len += (unsigned)ws_header(r->out + r->out_len, opcode, true,
	    len, NULL);
	memcpy(r->out + r->out_len, payload, len);
	r->out_len += (unsigned)len;
	return true;
}

/*
 * Send what is due, in order: a pong, the digests owed, then our close.
 * Returns -1 when the socket is to be closed now.
 */
static int
flush(struct own_conn *o)
{
	struct ws_raw *r = &o->r;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	unsigned hexlen;

	for (;;) {
		size_t off = r->out_off;
		int rc = write_out(o, r->out, r->out_len, &off);

		r->out_off = (unsigned)off;
		if (rc <= 0)
			return rc;
		r->out_off = r->out_len = 0;
		if (r->snap != NULL) {		/* its header went in out */
			if ((rc = write_out(o, r->snap->json, r->snap->len,
			    &r->snap_off)) <= 0)
				return rc;
			live_put(r->snap);
			r->snap = NULL;
		}
		if (r->close_sent)
			break;
		if (r->pong_due && append(o, WS_OP_PONG, r->pong, r->pong_len))
			r->pong_due = false;
		while ((hexlen = server_conn_next_digest(&o->c, hex)) > 0 &&
		    append(o, WS_OP_TEXT, hex, hexlen))
			server_conn_digest_sent(&o->c, hex, hexlen);
		if (r->snap_next != NULL && r->close_code == 0 &&
		    r->out_len + WS_SERVER_HEADER_MAX <= sizeof(r->out)) {
			r->out_len += (unsigned)ws_header(r->out + r->out_len,
			    WS_OP_TEXT, true, r->snap_next->len, NULL);
			r->snap = r->snap_next;
			r->snap_next = NULL;
			r->snap_off = 0;
			r->snap_at_us = lws_now_usecs();
		}
		if (r->out_len == 0 && r->close_code != 0) {
			append(o, WS_OP_CLOSE, r->close_payload, r->close_len);
			r->close_sent = true;
			lws_set_timeout(o->c.wsi, PENDING_TIMEOUT_CLOSE_ACK,
			    r->hangup ? FLUSH_WAIT_SECS : CLOSE_WAIT_SECS);
		}
		if (r->out_len == 0)
			break;
	}
	if (r->close_sent && r->hangup && r->out_len == 0 && !r->lingering) {
		/* Our last frame is out: FIN, then wait for theirs. */
		conn_shutdown(o);
		r->lingering = true;
		rx_enable(o, true);
		lws_set_timeout(o->c.wsi, PENDING_TIMEOUT_CLOSE_ACK, LINGER_SECS);
	}
	return 0;
}

/*
 * Octets consumed; all of them once the stream is over.  Too many
 * digests owed (on_data stopped the parser): pause reading.  The input
 * goes to the parser in slices the digest queue has room for (at a
 * small batch_size every octet can owe a digest).
 */
static size_t
parse(struct own_conn *o, uint8_t *buf, size_t len)
{
	struct ws_raw *r = &o->r;
	size_t used = 0;

	while (used < len && o->c.qlen < QUEUE_HIGH && r->parser.error == 0 &&
	    !r->parser.closed) {
		size_t slice = r->live ? len - used :
		    server_conn_allowance(&o->c, len - used);
		size_t n = ws_parse(&r->parser, buf + used, slice, &handler, o);

		used += n;
		if (n < slice)
			break;		/* a handler said stop */
	}
	if (o->c.qlen >= QUEUE_HIGH && !o->c.paused)
		server_conn_pause(&o->c);
	if (r->parser.error != 0) {
		log_stream(LOG_INFO, &o->c.s, "protocol-error",
		    "closing with %u: %s", r->parser.error, r->parser.why);
		stream_set_end(&o->c.s, STREAM_FAILED, "protocol error",
		    r->parser.why);
		wsserver_close(o, r->parser.error, r->parser.why);
		r->hangup = true;
		return len;
	}
	return r->parser.closed ? len : used;
}

/* Go on with what a pause left over. */
static void
feed_held(struct own_conn *o)
{
	struct ws_raw *r = &o->r;

	r->held_off += parse(o, r->held + r->held_off,
	    r->held_len - r->held_off);
	if (r->held_off < r->held_len)
		return;
	free(r->held);
	r->held = NULL;
	r->held_len = r->held_off = 0;
}

static int
on_data(void *arg, const uint8_t *p, size_t len, unsigned flags)
{
	struct own_conn *o = arg;

	if (o->c.closing)
		return 0;	/* after our close: RFC 6455 §5.5.1, discard */
	if (o->r.live) {
		/* Read-only: whatever a viewer sends changes nothing. */
		wsserver_close(o, WS_CLOSE_POLICY, "/live is read-only");
		return 0;
	}
	if (server_conn_data(&o->c, p, len, flags) == -1)
		return -1;
	return o->c.qlen >= QUEUE_HIGH ? 1 : 0;
}

static int
on_control(void *arg, int opcode, const uint8_t *p, size_t len)
{
	struct own_conn *o = arg;
	struct ws_raw *r = &o->r;

	o->c.last_rx_us = lws_now_usecs();	/* any frame is activity */
	switch (opcode) {
	case WS_OP_PING:
		/* Only the latest needs an answer (RFC 6455 §5.5.3). */
		memcpy(r->pong, p, len);
		r->pong_len = (unsigned)len;
		r->pong_due = !o->c.closing;
		break;
	case WS_OP_CLOSE:
		/* Theirs: echo it after the digests owed (§5.5.1), or it
		 * answers ours.  Either way the stream is over. */
		if (!r->close_sent)
			queue_close(o, len >= 2 ? (uint16_t)(p[0] << 8 | p[1]) :
			    WS_CLOSE_NORMAL, p, len);
		r->hangup = true;
		break;
	default:
		break;		/* an unsolicited pong */
	}
	return 0;
}

/*
 * Parse what was read (the worker's buffer or the handshake's); keep what
 * a pause leaves over in r->held.
 */
static void
feed(struct own_conn *o, uint8_t *buf, size_t len)
{
	struct ws_raw *r = &o->r;
	size_t used = parse(o, buf, len);

	if (used == len)
		return;
	/* Paused with input left: rare (a peer that reads no digests). */
	if ((r->held = malloc(len - used)) == NULL) {
		wsserver_close(o, WS_CLOSE_INTERNAL, "out of memory");
		r->hangup = true;
		return;
	}
	memcpy(r->held, buf + used, len - used);
	r->held_len = len - used;
	r->held_off = 0;
}

/*
 * Wake up for a read only when it is worth one (SO_RCVLOWAT): a stream
 * mid-frame is read in chunks of up to LOWAT_MAX instead of whatever
 * the last segment brought, a quarter of the server's kernel time.  Never
 * more than the frame still holds, nor, at /stream, than is due before
 * the next digest: a peer may wait for it (one batch in flight).
 */
static void
set_lowat(struct own_conn *o)
{
	const struct ws_parser *p = &o->r.parser;
	uint64_t want = 1;

	if (o->r.ssl != NULL)
		return;		/* ciphertext: its records are not frames */

	if (p->in_frame && !o->c.closing && !o->r.lingering) {
		want = p->left;
		if (o->c.s.mode == MODE_STREAMING &&
		    want > o->c.b.batch_size - o->c.b.fill)
			want = o->c.b.batch_size - o->c.b.fill;
		if (want > LOWAT_MAX)
			want = LOWAT_MAX;
		if (want < LOWAT_MIN)
			want = 1;
	}
	if ((int)want == o->r.lowat || (want == 1 && o->r.lowat == 0))
		return;
	o->r.lowat = (int)want;
	(void)setsockopt(o->r.fd, SOL_SOCKET, SO_RCVLOWAT, &o->r.lowat,
	    sizeof(o->r.lowat));
}

/*
 * Once a second: a peer that trickles (slower than LOWAT_MIN a second)
 * is read as it comes, so that it is not taken for idle.
 */
static void
wsserver_tick(struct own_conn *o, int64_t now_us)
{
	if (o->r.lowat > 1 && now_us - o->c.last_rx_us > LWS_US_PER_SEC) {
		o->r.lowat = 1;
		(void)setsockopt(o->r.fd, SOL_SOCKET, SO_RCVLOWAT,
		    &o->r.lowat, sizeof(o->r.lowat));
	}
}

/* Parse and send until paused, ended or out of input. */
static int
progress(struct own_conn *o)
{
	struct ws_raw *r = &o->r;

	for (;;) {
		if (flush(o) == -1)
			return -1;
		if (o->c.paused && o->c.qlen <= QUEUE_LOW)
			server_conn_resumed(&o->c);
		if (o->c.paused || r->held == NULL || r->close_sent ||
		    r->hangup || r->parser.error || r->parser.closed)
			break;
		feed_held(o);
	}
	/* Read more when nothing is held, nothing paused and not ended. */
	rx_enable(o, r->lingering || (!o->c.paused && r->held == NULL &&
	    !r->hangup && !r->parser.closed && !r->parser.error) ||
	    (r->close_sent && !r->hangup));
	if (o->c.open)
		set_lowat(o);
	/* What TLS holds already, poll() does not report: read it soon. */
	if (r->ssl != NULL && r->reading && !r->lingering && r->held == NULL &&
	    !o->c.paused && SSL_has_pending(r->ssl)) {
		r->rx_pending = true;
		want_write(o);
	}
	return 0;
}

/*
 * Send the HTTP answer; once it is out, FIN and read until the peer's
 * (discarding whatever body it sends), within the deadline.
 */
static int
answer_flush(struct own_conn *o)
{
	struct ws_raw *r = &o->r;
	int rc = write_out(o, r->answer, r->answer_len, &r->answer_off);

	if (rc <= 0)
		return rc;
	if (!r->lingering) {
		conn_shutdown(o);
		r->lingering = true;
		rx_enable(o, true);
		lws_set_timeout(o->c.wsi, PENDING_TIMEOUT_CLOSE_ACK, LINGER_SECS);
	}
	return 0;
}

/* Anything but an upgrade: an HTTP answer, then the connection ends. */
static int
answer(struct own_conn *o, const struct upgrade *u, unsigned status,
    const char *why)
{
	struct ws_raw *r = &o->r;

	if (status != 200 && u->websocket) {
		char peer[sizeof(o->c.s.peer)];

		server_peer_name(r->fd, peer, sizeof(peer));
		log_ratelimited(LOG_INFO, "refused an upgrade from %s to %.64s: "
		    "%u %s", peer, u->path, status, why);
	}
	if (http_answer(o->c.w, u, status, why, &r->answer, &r->answer_len) ==
	    -1)
		return -1;
	r->answer_off = 0;
	/* Nothing more is read until the answer is out: no body. */
	rx_enable(o, false);
	lws_set_timeout(o->c.wsi, PENDING_TIMEOUT_CLOSE_SEND, FLUSH_WAIT_SECS);
	return answer_flush(o);
}

/*
 * A /live viewer, once a second: this second's snapshot, shared with
 * every viewer (live.c builds it once); one not yet out is replaced, so
 * a viewer that reads slowly holds two at most.
 */
static void
live_tick(lws_sorted_usec_list_t *sul)
{
	struct own_conn *o = lws_container_of(sul, struct own_conn,
	    r.sul_live);
	struct ws_raw *r = &o->r;
	const struct server_params *p = &o->c.w->params;
	struct live_snap *snap;
	int64_t now = lws_now_usecs();

	if (o->c.closing || r->close_sent || r->hangup)
		return;
	if (o->c.w->wd->stopping || !p->dashboard) {
		wsserver_close(o, WS_CLOSE_GOING_AWAY, o->c.w->wd->stopping ?
		    "wsflowd stopping" : "dashboard turned off");
		return;
	}
	/* A viewer that reads nothing holds its slot idle_timeout at most. */
	if (r->snap != NULL && p->idle_timeout > 0 && now - r->snap_at_us >
	    (int64_t)p->idle_timeout * LWS_US_PER_SEC) {
		wsserver_close(o, WS_CLOSE_GOING_AWAY, "not reading /live");
		r->hangup = true;
		return;
	}
	if ((snap = live_get(o->c.w->wd, now)) != NULL) {
		live_put(r->snap_next);
		r->snap_next = snap;
		want_write(o);
	}
	lws_sul_schedule(lws_get_context(o->c.wsi), 0, &r->sul_live,
	    live_tick, LWS_US_PER_SEC);
}

static int
handshake_rx(struct own_conn *o)
{
	struct ws_raw *r = &o->r;
	struct upgrade u;
	enum upgrade_verdict v;
	enum wsflow_mode mode;
	char reply[UPGRADE_REPLY_MAX], protocol[sizeof(u.protocols)];
	const char *why;
	unsigned status;
	size_t n, rest;
	ssize_t got;
	bool root, live;

	/* Under TLS a request may span records poll() will not report. */
	do {
		got = conn_read(o, r->head + r->head_len,
		    UPGRADE_HEAD_MAX - r->head_len);
		if (got == -2)
			return 0;
		if (got <= 0)
			return -1;	/* gone before a request: not a stream */
		r->head_len += (size_t)got;
	} while ((v = upgrade_parse(r->head, r->head_len, &u)) ==
	    UPGRADE_MORE && r->ssl != NULL);
	if (v == UPGRADE_MORE)
		return 0;
	/*
	 * The live page: GET / without Upgrade is the page, not a stream's
	 * 426, and /live its feed; both only with server.dashboard (else
	 * 404), and both under server.origins, like every upgrade.
	 */
	root = server_path_is(u.path, "/") && !u.websocket;
	live = server_path_is(u.path, "/live") && o->c.w->params.dashboard;
	status = upgrade_status(&u, v, live ||
	    (!root && server_path_mode(u.path, &mode) == 0), &why);
	if ((status == 101 || (status == 200 && root)) &&
	    !server_origin_allowed(&o->c.w->params, u.origin)) {
		status = 403;
		why = "Origin not allowed here (server.origins)";
	}
	if (status != 101)
		return answer(o, &u, status, why);
	upgrade_subprotocol(&u, o->c.w->params.subprotocols, protocol,
	    sizeof(protocol));
	if ((n = upgrade_reply(&u, protocol, reply, sizeof(reply))) == 0)
		return -1;
	memcpy(r->out, reply, n);
	r->out_len = (unsigned)n;
	r->upgraded = true;
	lws_set_timeout(o->c.wsi, NO_PENDING_TIMEOUT, 0);
	ws_parser_init(&r->parser);
	if (live) {
		/* No stream: not in the registry nor the totals (its socket
		 * counts under max_connections like any other). */
		r->live = true;
		live_tick(&r->sul_live);
	} else if (server_conn_open(&o->c, o->c.w, o->c.wsi, mode,
	    &own_io) == -1)
		return -1;
	/* Frames sent right behind the request. */
	rest = r->head_len - u.head_len;
	if (rest > 0 && !o->c.closing)
		feed(o, (uint8_t *)r->head + u.head_len, rest);
	free(r->head);
	r->head = NULL;
	return progress(o);
}

/* After an HTTP answer or our FIN: discard until the peer's FIN. */
static int
linger_rx(struct own_conn *o)
{
	ssize_t got = read(o->r.fd, o->c.w->rxbuf, WSFLOW_RX_CHUNK);

	if (got == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	return got <= 0 ? -1 : 0;
}

static int
data_rx(struct own_conn *o)
{
	struct ws_raw *r = &o->r;
	uint8_t *buf = o->c.w->rxbuf;
	size_t got = 0;
	ssize_t n;

	if (r->lingering)
		return linger_rx(o);
	/*
	 * Input held back by a pause goes first; a POLLIN reported with the
	 * POLLOUT that paused us again waits for the rx flow to reopen.
	 */
	if (r->held != NULL || o->c.paused)
		return 0;
	r->rx_pending = false;
	/* TLS gives one record (16 KiB at most) a read: gather a buffer. */
	do {
		if ((n = conn_read(o, buf + got, WSFLOW_RX_CHUNK - got)) > 0)
			got += (size_t)n;
	} while (n > 0 && r->ssl != NULL && got < WSFLOW_RX_CHUNK);
	if (got == 0)
		return n == -2 ? 0 : -1; /* FIN, reset: a TCP drop is an end */
	feed(o, buf, got);
	return progress(o);
}

/* The core's side of the adapter. */
static void
io_close(struct server_conn *c, uint16_t code, const char *why)
{
	wsserver_close((struct own_conn *)c, code, why);
}

static void
io_tick(struct server_conn *c, int64_t now_us)
{
	wsserver_tick((struct own_conn *)c, now_us);
}

static const struct server_io own_io = {
	.close = io_close,
	.tick = io_tick,
};

static int
writeable(struct own_conn *o)
{
	if (o->r.tls_want_write) {	/* a TLS read waited for this */
		o->r.tls_want_write = false;
		if (o->r.answer == NULL && (o->r.upgraded ? data_rx(o) :
		    handshake_rx(o)) == -1)
			return -1;
	}
	if (o->r.answer != NULL)
		return answer_flush(o);
	if (progress(o) == -1)
		return -1;
	return o->r.rx_pending ? data_rx(o) : 0;
}

static int
wsserver_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	struct own_conn *o = user;
	struct worker *w;
	int rc;

	(void)in;
	(void)len;
	switch (reason) {
	case LWS_CALLBACK_RAW_ADOPT_FILE:
		w = lws_context_user(lws_get_context(wsi));
		o->c.w = w;
		o->c.wsi = wsi;
		o->r.fd = lws_get_socket_fd(wsi);
		o->r.ssl = lws_get_opaque_user_data(wsi);
		o->r.reading = true;
		if ((o->r.head = malloc(UPGRADE_HEAD_MAX)) == NULL)
			return -1;
		lws_set_timeout(wsi, PENDING_TIMEOUT_HOLDING_AH,
		    (int)w->params.handshake_timeout);
		return 0;

	case LWS_CALLBACK_RAW_RX_FILE:
		if (o->r.answer != NULL)
			return linger_rx(o);
		return o->r.upgraded ? data_rx(o) : handshake_rx(o);

	case LWS_CALLBACK_RAW_WRITEABLE_FILE:
		o->r.in_writeable = true;
		rc = writeable(o);
		o->r.in_writeable = false;
		return rc;

	case LWS_CALLBACK_RAW_CLOSE_FILE:
		lws_sul_cancel(&o->r.sul_write);
		lws_sul_cancel(&o->r.sul_live);
		/* Gone without the client's close frame (or ours): lost. */
		if (o->r.upgraded && !o->r.live && !o->r.parser.closed &&
		    !o->r.close_sent)
			stream_set_end(&o->c.s, STREAM_FAILED,
			    "connection lost", "the client went away without "
			    "a close frame");
		server_conn_close(&o->c);
		raw_free(o);
		return 0;

	/* lws tells protocols[0] of this adapter's vhosts of every socket
	 * it creates and destroys there. */
	case LWS_CALLBACK_WSI_CREATE:
		server_socket_count(lws_context_user(lws_get_context(wsi)), 1);
		return 0;

	case LWS_CALLBACK_WSI_DESTROY:
		server_socket_count(lws_context_user(lws_get_context(wsi)), -1);
		return 0;

	default:
		break;
	}
	return 0;
}

const struct lws_protocols wsserver_protocol = {
	.name = "wsflow-raw",
	.callback = wsserver_callback,
	.per_session_data_size = sizeof(struct own_conn),
};
