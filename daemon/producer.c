/*
 * producer.c — a producer stream: random data to a hashing server, exactly
 * as fast as the receiver consumes it, every digest checked.
 *
 * generator -> running hash (expected digests) -> frame -> lws -> socket.
 *
 * Flow control is TCP's: one frame is written per WRITEABLE and the next
 * WRITEABLE comes only when the kernel takes more, so at most one frame
 * sits in user space (docs/lws.md §4).  The modes that keep one batch,
 * frame or message in flight also wait for its digest.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "batch.h"
#include "daemon.h"
#include "gen.h"
#include "listen.h"
#include "log.h"
#include "producer.h"
#include "url.h"
#include "worker.h"
#include "ws.h"

/*
 * Connects in flight per worker.  Each holds lws's header buffers (about
 * 6 KiB) until it is up, and those left behind as holes in the heap
 * among the streams' own allocations: 1000 begun at once cost 9.5 KiB of
 * RSS a stream, 64 at a time 5.7, 256 at a time 7.4.  Not fewer: lws
 * polls every descriptor on each turn of the loop, so the more connects
 * a turn carries the faster they open (15000 streams sending 1 KiB/s:
 * 64 in flight opened in 44 s, 256 in 27 s, 1024 in 18 s).
 */
#define CONNECTS_IN_FLIGHT	256
#define EXPECT_INITIAL	2	/* grows: most streams owe one */
#define EXPECT_MAX	65536	/* digests owed by the server at most */
#define BACKOFF_MIN_MS	250
#define BACKOFF_MAX_MS	8000
#define LINGER_US	(2 * LWS_US_PER_SEC)	/* wait for owed digests */
#define CLOSE_WAIT_US	(10 * LWS_US_PER_SEC)	/* and for the close answer */
#define RX_MAX		(2 * EVP_MAX_MD_SIZE + 64)
#define PROGRESS_US	(10 * LWS_US_PER_SEC)
#define STALL_US	(30 * LWS_US_PER_SEC)	/* waiting on one digest */
#define MISMATCH_LOGGED	10	/* err lines in a row, then counted only */

struct expect {
	uint8_t		 md[EVP_MAX_MD_SIZE];
	int64_t		 at_us;		/* last byte handed to lws */
};

/*
 * Where an entry's streams go, parsed once: its parallel streams share
 * it (a thousand streams, one URL), the last one frees it.
 */
struct target {
	atomic_uint	 refs;
	struct wsurl	 url;
	char		 host[sizeof(((struct wsurl *)0)->host) + 8];
					/* Host: with the port unless default */
};

struct producer {
	struct stream	 s;		/* first: the registry sees this */
	struct worker	*w;
	struct producer_conf conf;	/* own copy: survives a reload */
	struct target	*tgt;		/* shared by the entry's streams */
	struct lws_vhost *vh;
	struct lws	*wsi;
	struct batcher	 b;
	struct gen	 gen;

	struct expect	*expect;	/* ring of digests the server owes */
	unsigned	 ecap, ehead, elen;

	uint64_t	 sent;		/* octets, all connections */
	uint64_t	 msg_sent;	/* octets in the current message */
	uint64_t	 batch_no;	/* digests checked so far */
	bool		 in_message;
	bool		 waiting;	/* one in flight: digest not back yet */
	bool		 ending;	/* end the message, then close */
	bool		 final_sent;
	bool		 close_now;
	bool		 close_sent;	/* ours went: wait for the server's */
	bool		 stall_said;	/* "no digest" logged for this wait */
	bool		 going_away;	/* daemon stop: 1001, else 1000 */
	bool		 done;		/* limit reached or stopped */

	double		 tokens;	/* rate: token bucket */
	int64_t		 tokens_at_us;
	int64_t		 choked_at_us;
	int64_t		 progress_at_us;
	uint64_t	 progress_bytes;	/* st.bytes at progress_at_us */
	unsigned	 attempt;	/* connect attempts since success */
	int64_t		 connect_at_us;	/* this attempt began */
	int64_t		 start_delay_us;	/* its place in a ramp */
	int64_t		 tls_at_us;	/* its server certificate came */
	int64_t		 request_at_us;	/* its upgrade request went */
	int64_t		 timeout_us;	/* lws gives up on a connect after it */
	bool		 failed;	/* the server is of no use: end, or back off */
	bool		 open;		/* established, not yet gone */
	bool		 connect_slot;	/* holds one of CONNECTS_IN_FLIGHT */
	lws_dll2_t	 connect_wait;	/* in the worker's connect_queue */
	bool		 hint_said;	/* the likely cause of mismatches, once */
	unsigned	 mismatch_run;	/* mismatches since one verified */
	unsigned	 close_code;	/* the server's close, if any */
	char		 close_why[64];

	char		 rx[RX_MAX];
	size_t		 rxlen;
	bool		 rx_oversize;

	lws_sorted_usec_list_t sul_connect;
	lws_sorted_usec_list_t sul_rate;
	lws_sorted_usec_list_t sul_end;	/* duration */
	lws_sorted_usec_list_t sul_linger;
};

static void	producer_connect(lws_sorted_usec_list_t *);
static void	producer_finish(struct producer *, const char *why);
static void	producer_stop(struct producer *, bool going_away);
static const struct stream_ops producer_ops;

/* ---- digests owed by the server ---- */

static struct expect *
expect_push(struct producer *p)
{
	struct expect *e;

	if (p->elen == p->ecap) {
		struct expect *n;
		unsigned cap = p->ecap * 2;

		if (cap > EXPECT_MAX ||
		    (n = calloc(cap, sizeof(*n))) == NULL)
			return NULL;
		for (unsigned i = 0; i < p->elen; i++)
			n[i] = p->expect[(p->ehead + i) % p->ecap];
		free(p->expect);
		p->expect = n;
		p->ecap = cap;
		p->ehead = 0;
	}
	e = &p->expect[(p->ehead + p->elen) % p->ecap];
	p->elen++;
	e->at_us = lws_now_usecs();
	return e;
}

/* Batcher callback: a batch boundary the server will answer. */
static int
expect_batch(void *arg, const uint8_t *md, unsigned len)
{
	struct producer *p = arg;
	struct expect *e = expect_push(p);

	if (e == NULL) {
		log_stream(LOG_ERR, &p->s, NULL, "more than %u digests owed "
		    "by the server", EXPECT_MAX);
		return -1;
	}
	memcpy(e->md, md, len);
	return 0;
}

static int
expect_running(struct producer *p, bool final)
{
	uint8_t md[EVP_MAX_MD_SIZE];

	if ((final ? batcher_final(&p->b, md) : batcher_running(&p->b, md)) ==
	    -1)
		return -1;
	return expect_batch(p, md, p->b.md_len);
}

/* ---- sending ---- */

static bool
limit_reached(const struct producer *p)
{
	return p->conf.bytes != 0 && p->sent >= p->conf.bytes;
}

/*
 * Token bucket on top of backpressure: how many octets may go now.  0
 * means wait: *delay_us says how long.
 */
static uint64_t
rate_allow(struct producer *p, uint64_t want, uint64_t *delay_us)
{
	int64_t now = lws_now_usecs();
	double cap = p->conf.rate / 10.0;	/* 100 ms of burst */

	if (p->conf.rate == 0)
		return want;
	if (cap < 4096)
		cap = 4096;
	p->tokens += (double)(now - p->tokens_at_us) * p->conf.rate /
	    LWS_US_PER_SEC;
	if (p->tokens > cap)
		p->tokens = cap;
	p->tokens_at_us = now;
	if (want > cap)
		want = (uint64_t)cap;
	if (p->tokens >= (double)want) {
		p->tokens -= (double)want;
		return want;
	}
	*delay_us = (uint64_t)(((double)want - p->tokens) * LWS_US_PER_SEC /
	    p->conf.rate);
	if (*delay_us < LWS_US_PER_MS)	/* sub-ms timers spin (docs/lws.md §2) */
		*delay_us = LWS_US_PER_MS;
	/*
	 * Timer slack: due on a boundary of a quarter of the wait (1 to
	 * 10 ms), so that many slow streams wake the loop together (each
	 * turn polls every descriptor) rather than one by one.  The bucket
	 * keeps the tokens of the later start: the rate holds.
	 */
	{
		uint64_t g = *delay_us / 4, due;

		g = g < LWS_US_PER_MS ? LWS_US_PER_MS : g > 10 * LWS_US_PER_MS ?
		    10 * LWS_US_PER_MS : g / LWS_US_PER_MS * LWS_US_PER_MS;
		due = ((uint64_t)now + *delay_us + g - 1) / g * g;
		*delay_us = due - (uint64_t)now;
	}
	return 0;
}

/* Write one frame: payload (at LWS_PRE in the worker's buffer) hashed. */
static int
write_frame(struct producer *p, uint8_t *payload, size_t n, bool fin)
{
	int first = !p->in_message;

	if (p->conf.framing == FRAMING_LWS) {
		/* Stock framing: lws masks in place, after we hashed. */
		if (lws_write(p->wsi, payload, n, lws_write_ws_flags(
		    LWS_WRITE_BINARY, first, fin)) < (int)n)
			return -1;
	} else {
		uint8_t key[4];
		size_t hl;

		if (RAND_bytes(key, sizeof(key)) != 1)
			return -1;
		hl = ws_client_header(payload, n, first ? WS_OP_BINARY :
		    WS_OP_CONTINUATION, fin, key);
		ws_mask(payload, n, key);
		if (lws_write(p->wsi, payload - hl, hl + n, LWS_WRITE_RAW) <
		    (int)(hl + n))
			return -1;
	}
	p->in_message = !fin;
	p->sent += n;
	p->msg_sent += n;
	STAT_ADD(p->s.st.bytes, n);
	STAT_ADD(p->w->totals.bytes_sent, n);
	if (fin) {
		p->msg_sent = 0;
		STAT_ADD(p->s.st.messages, 1);
	}
	return 0;
}

/* The empty frame that ends the message (and what it earns). */
static int
send_final(struct producer *p)
{
	uint8_t *buf;

	p->final_sent = true;
	if (!p->in_message)
		return 0;
	if ((buf = worker_txbuf(p->w, LWS_PRE)) == NULL ||
	    write_frame(p, buf + LWS_PRE, 0, true) == -1)
		return -1;
	/* Frame servers digest every frame, message servers every message. */
	if (p->s.mode == MODE_FRAME)
		return expect_running(p, false);
	if (p->s.mode == MODE_MESSAGE)
		return expect_running(p, true);
	return 0;
}

static void
rate_resume(lws_sorted_usec_list_t *sul)
{
	struct producer *p = lws_container_of(sul, struct producer, sul_rate);

	if (p->wsi != NULL)
		lws_callback_on_writable(p->wsi);
}

static int
send_next(struct producer *p)
{
	uint64_t n = p->conf.frame_size, delay_us = 0;
	uint8_t *payload;
	bool fin = false;

	/* A new message (a new connection too) starts a new running hash. */
	if (!p->in_message && batcher_begin(&p->b) == -1)
		return -1;
	switch (p->s.mode) {
	case MODE_STREAMING:
		/* Up to the next batch boundary: one batch in flight. */
		if (n > p->b.batch_size - p->b.fill)
			n = p->b.batch_size - p->b.fill;
		break;
	case MODE_FRAME:
	case MODE_MESSAGE:
		if (n > p->conf.message_size - p->msg_sent)
			n = p->conf.message_size - p->msg_sent;
		break;
	default:
		break;
	}
	if (p->conf.bytes != 0 && n > p->conf.bytes - p->sent)
		n = p->conf.bytes - p->sent;
	if (n > 0 && (n = rate_allow(p, n, &delay_us)) == 0) {
		lws_sul_schedule(p->w->ctx, 0, &p->sul_rate, rate_resume,
		    (lws_usec_t)delay_us);
		return 0;
	}

	if ((payload = worker_txbuf(p->w, LWS_PRE + (size_t)n)) == NULL)
		return -1;
	payload += LWS_PRE;
	gen_fill(&p->gen, payload, (size_t)n);
	if (batcher_feed(&p->b, payload, (size_t)n, expect_batch, p) == -1)
		return -1;
	if ((p->s.mode == MODE_FRAME || p->s.mode == MODE_MESSAGE) &&
	    p->msg_sent + n == p->conf.message_size)
		fin = true;
	if (p->conf.bytes != 0 && p->sent + n == p->conf.bytes)
		fin = true;
	if (write_frame(p, payload, (size_t)n, fin) == -1)
		return -1;

	switch (p->s.mode) {
	case MODE_STREAMING:
		if (n > 0 && p->b.fill == 0)	/* a boundary: await it */
			p->waiting = true;
		break;
	case MODE_FRAME:
		if (expect_running(p, fin) == -1)
			return -1;
		p->waiting = true;
		break;
	case MODE_MESSAGE:
		if (fin) {
			if (expect_running(p, true) == -1)
				return -1;
			p->waiting = true;
		}
		break;
	default:
		break;
	}
	if (limit_reached(p)) {
		p->ending = true;
		p->final_sent = true;	/* that frame carried FIN */
	}
	return 0;
}

static void
linger_expired(lws_sorted_usec_list_t *sul)
{
	struct producer *p = lws_container_of(sul, struct producer,
	    sul_linger);

	if (p->wsi == NULL)
		return;
	if (p->close_sent) {
		/* The server never answered our close: hang up. */
		log_stream(LOG_INFO, &p->s, NULL, "no close from the server "
		    "in %d s: hanging up", (int)(CLOSE_WAIT_US /
		    LWS_US_PER_SEC));
		lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_OK,
		    LWS_TO_KILL_ASYNC);
		return;
	}
	if (p->elen > 0)
		log_stream(LOG_WARNING, &p->s, NULL, "closing with %u digests "
		    "still owed by the server", p->elen);
	p->close_now = true;
	lws_callback_on_writable(p->wsi);
}

/*
 * The client's half of the closing handshake (RFC 6455 §7.1.1): lws sends
 * our close and then reads until the server answers with its own, so
 * that it has read everything before either side lets go.  lws still
 * calls WRITEABLE meanwhile: a second -1 would make it hang up at once.
 */
static int
send_close(struct producer *p, struct lws *wsi)
{
	if (p->going_away)
		lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY,
		    (unsigned char *)"shutting down", 13);
	else if (p->failed)
		lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR,
		    (unsigned char *)"not a digest", 12);
	else
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL,
		    (unsigned char *)"done", 4);
	p->close_sent = true;
	stream_set_state(&p->s, "closing");
	lws_sul_schedule(p->w->ctx, 0, &p->sul_linger, linger_expired,
	    CLOSE_WAIT_US);
	return -1;
}

static int
on_writeable(struct producer *p, struct lws *wsi)
{
	int64_t now = lws_now_usecs();

	if (p->choked_at_us != 0) {
		STAT_ADD(p->s.st.bp_usec, now - p->choked_at_us);
		p->choked_at_us = 0;
	}
	if (p->close_sent)
		return 0;
	if (p->close_now)
		return send_close(p, wsi);
	if (p->ending) {
		if (!p->final_sent && send_final(p) == -1)
			return -1;
		if (p->elen == 0) {
			p->close_now = true;
			lws_callback_on_writable(wsi);
		} else if (lws_dll2_is_detached(&p->sul_linger.list))
			lws_sul_schedule(p->w->ctx, 0, &p->sul_linger,
			    linger_expired, LINGER_US);
		return 0;
	}
	/* Waiting on a digest, or the server owes too many: no frame. */
	if (p->waiting || p->elen + 1 >= EXPECT_MAX)
		return 0;
	if (send_next(p) == -1)
		return -1;
	if (lws_dll2_is_detached(&p->sul_rate.list) && (!p->waiting ||
	    p->ending))
		lws_callback_on_writable(wsi);
	/* The kernel did not take it all: the receiver holds us back. */
	if (lws_send_pipe_choked(wsi)) {
		p->choked_at_us = now;
		STAT_ADD(p->s.st.bp_pauses, 1);
	}
	return 0;
}

/* ---- why it failed, in words a user can act on ---- */

/* Keep the reason for `show` (its `error`); "" once healthy again. */
static void __attribute__((format(printf, 2, 3)))
producer_set_error(struct producer *p, const char *fmt, ...)
{
	char buf[sizeof(p->s.error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	stream_set_error(&p->s, buf);
}

static const char *
http_reason(unsigned status)
{
	switch (status) {
	case 200: return " OK";
	case 301: return " Moved Permanently";
	case 302: return " Found";
	case 400: return " Bad Request";
	case 401: return " Unauthorized";
	case 403: return " Forbidden";
	case 404: return " Not Found";
	case 405: return " Method Not Allowed";
	case 426: return " Upgrade Required";
	case 429: return " Too Many Requests";
	case 500: return " Internal Server Error";
	case 502: return " Bad Gateway";
	case 503: return " Service Unavailable";
	default: return "";
	}
}

/* The server answered the upgrade with another HTTP status than 101. */
static void
why_http(struct producer *p, unsigned status, char *buf, size_t len)
{
	const char *r = http_reason(status);

	if (status < 300)
		snprintf(buf, len, "not a WebSocket server: it answered the "
		    "upgrade to %.100s with HTTP %u%s", p->tgt->url.path, status, r);
	else if (status < 400)
		snprintf(buf, len, "HTTP %u%s from the server: a redirect, "
		    "which producers do not follow: use the URL it names",
		    status, r);
	else if (status == 404)
		snprintf(buf, len, "HTTP 404 Not Found from the server: no "
		    "WebSocket endpoint at %.100s (wsflowd serves /, /stream, "
		    "/frame and /message)", p->tgt->url.path);
	else if (status == 401 || status == 403)
		snprintf(buf, len, "HTTP %u%s from the server: access refused "
		    "(credentials in headers? an Origin it does not allow?)",
		    status, r);
	else if (status == 426)
		snprintf(buf, len, "HTTP 426 from the server: it wants another "
		    "WebSocket version than 13");
	else if (status == 503)
		snprintf(buf, len, "HTTP 503 from the server: busy, or at its "
		    "connection limit (max_connections)");
	else
		snprintf(buf, len, "HTTP %u%s from the server: it refused the "
		    "WebSocket upgrade to %.100s", status, r, p->tgt->url.path);
}

/* Did lws give up waiting (its timeout is the handshake_timeout)? */
static bool
timed_out(const struct producer *p, const char *in)
{
	return strcmp(in, "Timed out waiting SSL") == 0 ||
	    lws_now_usecs() - p->connect_at_us >= p->timeout_us * 9 / 10;
}

/* The TLS handshake failed: OpenSSL's verdict on the certificate. */
static void
why_tls(struct producer *p, SSL *ssl, const char *in, char *buf,
    size_t len)
{
	long v = SSL_get_verify_result(ssl);
	const char *vs = X509_verify_cert_error_string(v);

	switch (v) {
	case X509_V_OK:
		break;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		snprintf(buf, len, "TLS hostname mismatch: the server's "
		    "certificate is not for %.100s (%s): put a name it has in "
		    "the URL", p->tgt->url.host, vs);
		return;
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		snprintf(buf, len, "TLS certificate not valid now (%s): renew "
		    "the server's certificate, or check this host's clock",
		    vs);
		return;
	default:
		if (p->conf.tls_ca == NULL)
			snprintf(buf, len, "TLS certificate not trusted (%s): "
			    "set tls.ca to the server's certificate or its CA",
			    vs);
		else
			snprintf(buf, len, "TLS certificate not trusted (%s): "
			    "not signed by tls.ca %s", vs, p->conf.tls_ca);
		return;
	}
	if (SSL_get0_peer_certificate(ssl) == NULL && timed_out(p, in))
		snprintf(buf, len, "no TLS answer from %.100s port %d in time: "
		    "is it a TLS port?", p->tgt->url.host, p->tgt->url.port);
	else if (SSL_get0_peer_certificate(ssl) == NULL)
		snprintf(buf, len, "TLS handshake failed before any "
		    "certificate: no TLS server on port %d (a ws:// port? then "
		    "use ws://)", p->tgt->url.port);
	else
		snprintf(buf, len, "TLS handshake failed (%s)", in);
}

/*
 * lws's reason for an asynchronous failure is a short string; what the
 * user can act on comes from the TLS session, the HTTP status and when
 * it happened.
 */
static void
why_failed(struct producer *p, struct lws *wsi, const char *in, char *buf,
    size_t len)
{
	SSL *ssl = p->tgt->url.tls ? lws_get_ssl(wsi) : NULL;
	unsigned status = lws_http_client_http_response(wsi);

	(void)log_lws_take();	/* lws's own line: said better below */
	if (in == NULL)
		in = "";
	if (ssl != NULL && !SSL_is_init_finished(ssl))
		why_tls(p, ssl, in, buf, len);
	else if (status != 0 && status != 101)
		why_http(p, status, buf, len);
	else if (status == 101)
		snprintf(buf, len, "not a WebSocket server: its 101 answer is "
		    "not a WebSocket handshake (%s)", in);
	else if (strcmp(in, "Unable to connect") == 0) {
		/* lws read SO_ERROR and lost it: timed out, or refused. */
		if (timed_out(p, in))
			snprintf(buf, len, "no answer from %.100s port %d: is the "
			    "host up, does a firewall drop the connection?",
			    p->tgt->url.host, p->tgt->url.port);
		else
			snprintf(buf, len, "connection refused by %.100s port %d: "
			    "is the server running, is the port right?",
			    p->tgt->url.host, p->tgt->url.port);
	} else if (strcmp(in, "closed before established") == 0 ||
	    strcmp(in, "Closed before conn") == 0 || timed_out(p, in))
		snprintf(buf, len, "no answer to the WebSocket upgrade from "
		    "%.100s port %d in time: is it a WebSocket server?",
		    p->tgt->url.host, p->tgt->url.port);
	else if (strcmp(in, "read failed") == 0 ||
	    strcmp(in, "Peer hung up") == 0 ||
	    strcmp(in, "problems parsing header") == 0)
		snprintf(buf, len, "not a WebSocket server: it closed the "
		    "connection without an HTTP answer%s", p->tgt->url.tls ? "" :
		    " (a TLS port? then use wss://)");
	else if (*in == '\0')
		snprintf(buf, len, "the connection to %.100s port %d ended "
		    "before the WebSocket handshake", p->tgt->url.host, p->tgt->url.port);
	else
		snprintf(buf, len, "connection failed: %s", in);
}

/*
 * lws_client_connect_via_info() failed at once and said nothing: a name
 * that does not resolve, or a connect() refused on the spot (errno
 * survives lws's cleanup).
 */
static void
why_not_started(struct producer *p, int e, char *buf, size_t len)
{
	struct addrinfo hints, *res;
	uint8_t a[16];
	int rc;

	if (inet_pton(AF_INET, p->tgt->url.host, a) != 1 &&
	    inet_pton(AF_INET6, p->tgt->url.host, a) != 1) {
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		/* Blocks, as lws's own lookup did: only after a failure. */
		if ((rc = getaddrinfo(p->tgt->url.host, NULL, &hints, &res)) != 0) {
			if (rc == EAI_NONAME || rc == EAI_NODATA)
				snprintf(buf, len, "name not found: no address "
				    "for %.100s (check the URL's host name)",
				    p->tgt->url.host);
			else
				snprintf(buf, len, "cannot look up %.100s: %s (is "
				    "a name server reachable?)", p->tgt->url.host,
				    rc == EAI_SYSTEM ? strerror(errno) :
				    gai_strerror(rc));
			return;
		}
		freeaddrinfo(res);
	}
	switch (e) {
	case ENETUNREACH:
	case EHOSTUNREACH:
		snprintf(buf, len, "no route to %.100s: %s (check the address "
		    "and this host's routes)", p->tgt->url.host, strerror(e));
		break;
	case ECONNREFUSED:
		snprintf(buf, len, "connection refused by %.100s port %d: is the "
		    "server running, is the port right?", p->tgt->url.host,
		    p->tgt->url.port);
		break;
	case EACCES:
	case EPERM:
		snprintf(buf, len, "connecting to %.100s port %d is not permitted "
		    "here: %s (a firewall rule?)", p->tgt->url.host, p->tgt->url.port,
		    strerror(e));
		break;
	default:
		snprintf(buf, len, "cannot start a connection to %.100s port "
		    "%d%s%s", p->tgt->url.host, p->tgt->url.port, e ? ": " : "",
		    e ? strerror(e) : "");
		break;
	}
}

/*
 * The server is not one to stream to (it sent something that is not a
 * digest): say so, close, and end the stream as failed or back off.
 */
static void
producer_fail(struct producer *p, const char *why)
{
	if (p->failed)
		return;
	p->failed = true;
	stream_set_error(&p->s, why);	/* said when the connection ends */
	p->close_now = true;
	if (p->wsi != NULL)
		lws_callback_on_writable(p->wsi);
}

/* ---- digests from the server ---- */

/*
 * A mismatch: counted, and logged at err, but not the hundredth in a
 * row of a stream that is misconfigured rather than corrupted; before
 * any digest verified, say once what the likely cause is.
 */
static void __attribute__((format(printf, 2, 3)))
mismatch(struct producer *p, const char *fmt, ...)
{
	const EVP_MD *md = EVP_MD_CTX_get0_md(p->b.md);
	char buf[320], name[32];
	va_list ap;

	STAT_ADD(p->s.st.mismatched, 1);
	STAT_ADD(p->w->totals.digest_mismatches, 1);
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* Never one verified: the likely cause is the error to keep. */
	if (STAT_GET(p->s.st.verified) != 0 || !p->hint_said)
		producer_set_error(p, "digest mismatch: %s", buf);
	/* The likely cause first: the lines after it are rate limited. */
	if (STAT_GET(p->s.st.verified) == 0 && !p->hint_said) {
		/* As the configuration spells it: OpenSSL says "SHA256". */
		snprintf(name, sizeof(name), "%s", md != NULL ?
		    EVP_MD_get0_name(md) : "?");
		for (char *c = name; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
		p->hint_said = true;
		log_stream(LOG_WARNING, &p->s, "digest-mismatch-hint",
		    "the first digest already differs: does the server use "
		    "batch_size %llu and digest %s, as this producer does?",
		    (unsigned long long)p->b.batch_size, name);
		producer_set_error(p, "%.150s (from the first digest on: "
		    "the server's batch_size %llu and digest %s too?)", buf,
		    (unsigned long long)p->b.batch_size, name);
	}
	if (++p->mismatch_run <= MISMATCH_LOGGED)
		log_stream(LOG_ERR, &p->s, "digest-mismatch", "%s%s", buf,
		    p->mismatch_run == MISMATCH_LOGGED ? " (more are counted, "
		    "not logged, until one verifies)" : "");
}

/* Could it be a digest, of any algorithm: hex of an even length? */
static bool
looks_hex(const char *text, size_t len)
{
	if (len == 0 || len % 2 != 0 || len > 2 * EVP_MAX_MD_SIZE)
		return false;
	for (size_t i = 0; i < len; i++)
		if (strchr("0123456789abcdefABCDEF", text[i]) == NULL ||
		    text[i] == '\0')
			return false;
	return true;
}

static void
check_digest(struct producer *p, const char *text, size_t len)
{
	uint8_t got[EVP_MAX_MD_SIZE];
	char exp_hex[2 * EVP_MAX_MD_SIZE + 1];
	int64_t now = lws_now_usecs();
	struct expect *e;
	uint64_t no;

	if (!looks_hex(text, len)) {
		producer_fail(p, "the server sent a text message that is not "
		    "a digest: not a wsflow hashing server (an echo server?)");
		return;
	}
	no = p->batch_no++;
	STAT_ADD(p->s.st.digests, 1);
	STAT_ADD(p->w->totals.digests_received, 1);
	stream_set_digest(&p->s, text, len);
	if (p->elen == 0) {
		mismatch(p, "digest %llu: none was due, got \"%.*s\"",
		    (unsigned long long)no, (int)(len > 130 ? 130 : len),
		    text);
		return;
	}
	e = &p->expect[p->ehead];
	p->ehead = (p->ehead + 1) % p->ecap;
	p->elen--;
	if (p->stall_said && strcmp(stream_state(&p->s), "stalled") == 0)
		stream_set_state(&p->s, "sending");
	p->stall_said = false;
	STAT_SET(p->s.st.latency_last_us, now - e->at_us);
	hist_add(&p->s.st.latency, (uint64_t)(now - e->at_us));
	if (STAT_GET(p->s.st.latency_last_us) > STAT_GET(p->s.st.latency_max_us))
		STAT_SET(p->s.st.latency_max_us, now - e->at_us);
	if (digest_unhex(text, len, got, p->b.md_len) == 0 &&
	    memcmp(got, e->md, p->b.md_len) == 0) {
		STAT_ADD(p->s.st.verified, 1);
		STAT_ADD(p->w->totals.digests_verified, 1);
		p->mismatch_run = 0;
		return;
	}
	digest_hex(e->md, p->b.md_len, exp_hex);
	mismatch(p, "digest %llu mismatch: expected %s, got \"%.*s\"",
	    (unsigned long long)no, exp_hex, (int)(len > 130 ? 130 : len),
	    text);
}

static int
on_receive(struct producer *p, struct lws *wsi, const char *in, size_t len)
{
	if (lws_is_first_fragment(wsi)) {
		p->rxlen = 0;
		p->rx_oversize = false;
	}
	if (p->rxlen + len > sizeof(p->rx))
		p->rx_oversize = true;
	else {
		memcpy(p->rx + p->rxlen, in, len);
		p->rxlen += len;
	}
	if (!lws_is_final_fragment(wsi))
		return 0;
	if (p->failed)
		return 0;	/* closing: what follows is of no interest */
	if (p->rx_oversize || lws_frame_is_binary(wsi)) {
		producer_fail(p, lws_frame_is_binary(wsi) ? "the server sent "
		    "a binary message, not a digest: not a wsflow hashing "
		    "server (an echo server?)" : "the server sent a long "
		    "message, not a digest: not a wsflow hashing server (an "
		    "echo server?)");
		return 0;
	}
	check_digest(p, p->rx, p->rxlen);
	if (p->failed)
		return 0;
	if (p->waiting && p->elen == 0) {
		p->waiting = false;
		lws_callback_on_writable(wsi);
	}
	if (p->ending && p->final_sent && p->elen == 0) {
		p->close_now = true;
		lws_callback_on_writable(wsi);
	}
	return 0;
}

/* ---- connection life ---- */

static void
schedule_connect(struct producer *p, const char *why)
{
	unsigned ms = BACKOFF_MAX_MS;
	uint64_t jitter;

	if (p->attempt < 6 && (BACKOFF_MIN_MS << p->attempt) < BACKOFF_MAX_MS)
		ms = BACKOFF_MIN_MS << p->attempt;
	/*
	 * +-25 % so that many producers do not retry in step: the same
	 * quarter both ways (250 ms: 188..312, never 313).
	 */
	jitter = gen_next(&p->gen) % (2 * (ms / 4) + 1);
	ms = ms - ms / 4 + (unsigned)jitter;
	p->attempt++;
	STAT_ADD(p->s.reconnects, 1);
	STAT_SET(p->s.next_attempt_us, lws_now_usecs() + (int64_t)ms *
	    LWS_US_PER_MS);
	stream_set_state(&p->s, "backoff");
	log_stream(LOG_WARNING, &p->s, "connect-failed", "%s: %s; retry %u "
	    "in %u ms", p->conf.url, why, p->attempt, ms);
	lws_sul_schedule(p->w->ctx, 0, &p->sul_connect, producer_connect,
	    (lws_usec_t)ms * LWS_US_PER_MS);
}

/* This attempt failed: keep why, then back off or end as failed. */
static void
connect_failed(struct producer *p, const char *reason, const char *why)
{
	enum fail_reason f = strcmp(reason, "connection lost") == 0 ?
	    FAIL_LOST : strcmp(reason, "protocol error") == 0 ?
	    FAIL_PROTOCOL : FAIL_CONNECT;

	STAT_ADD(p->s.st.fail[f], 1);
	stream_set_error(&p->s, why);
	if (p->conf.reconnect) {
		schedule_connect(p, why);
		return;
	}
	log_stream(LOG_WARNING, &p->s, "connect-failed", "%s: %s",
	    p->conf.url, why);
	stream_set_end(&p->s, STREAM_FAILED, reason, NULL);
	producer_finish(p, "failed");
}

/* The connect is up or gone: its slot goes to the next one waiting. */
static void
connect_slot_release(struct producer *p)
{
	struct worker *w = p->w;
	lws_dll2_t *next;

	lws_dll2_remove(&p->connect_wait);
	if (!p->connect_slot)
		return;
	p->connect_slot = false;
	w->connecting--;
	if (!w->wd->stopping &&
	    (next = lws_dll2_get_head(&w->connect_queue)) != NULL) {
		struct producer *q = lws_container_of(next, struct producer,
		    connect_wait);

		lws_dll2_remove(next);
		/* Not from inside another wsi's callback: at once, from
		 * the loop (a 0 µs timer is ripe, it does not spin). */
		lws_sul_schedule(w->ctx, 0, &q->sul_connect, producer_connect,
		    0);
	}
}

static void
producer_connect(lws_sorted_usec_list_t *sul)
{
	struct producer *p = lws_container_of(sul, struct producer,
	    sul_connect);
	struct lws_client_connect_info ci;

	if (!p->connect_slot) {
		if (p->w->connecting >= CONNECTS_IN_FLIGHT) {
			stream_set_state(&p->s, "connecting");
			lws_dll2_add_tail(&p->connect_wait,
			    &p->w->connect_queue);
			return;
		}
		p->w->connecting++;
		p->connect_slot = true;
	}
	memset(&ci, 0, sizeof(ci));
	ci.context = p->w->ctx;
	ci.vhost = p->vh;
	ci.address = p->tgt->url.host;
	ci.port = p->tgt->url.port;
	ci.path = p->tgt->url.path;
	ci.host = p->tgt->host;	/* lws takes the TLS name from it, less :port */
	ci.origin = NULL;	/* a browser's header: not made up here */
	ci.ietf_version_or_minus_one = -1;
	ci.local_protocol_name = producer_protocol.name;
	ci.userdata = p;
	ci.pwsi = &p->wsi;
	ci.alpn = "http/1.1";
	if (p->tgt->url.tls) {
		ci.ssl_connection = LCCSCF_USE_SSL;
		if (!p->conf.tls_verify)
			ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED |
			    LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
			    LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
	}
	stream_set_state(&p->s, "connecting");
	STAT_SET(p->s.next_attempt_us, 0);
	p->connect_at_us = lws_now_usecs();
	p->tls_at_us = p->request_at_us = 0;
	errno = 0;
	if (lws_client_connect_via_info(&ci) == NULL) {
		char why[sizeof(p->s.error)];

		why_not_started(p, errno, why, sizeof(why));
		p->wsi = NULL;
		connect_slot_release(p);
		connect_failed(p, "connect failed", why);
	}
}

static void
duration_over(lws_sorted_usec_list_t *sul)
{
	struct producer *p = lws_container_of(sul, struct producer, sul_end);

	stream_set_end(&p->s, STREAM_FINISHED, "duration limit", NULL);
	producer_stop(p, false);
}

/*
 * How long this connection took, by phase.  lws says nothing when its
 * connect() completes, so: "tcp" until the request went (ws://) or the
 * server's certificate came (wss://: TCP and the TLS hello's round
 * trip; OpenSSL shows us the certificate, but not with verify off, when
 * "tls" holds both), "tls" until the request went, "upgrade" until its
 * answer.
 */
static void
connect_phases(struct producer *p, int64_t now)
{
	int64_t req = p->request_at_us ? p->request_at_us : now;
	int64_t tcp_end = !p->tgt->url.tls ? req : p->tls_at_us ? p->tls_at_us :
	    p->connect_at_us;

	STAT_SET(p->s.st.connect_tcp_us, tcp_end - p->connect_at_us);
	STAT_SET(p->s.st.connect_tls_us, req - tcp_end);
	STAT_SET(p->s.st.connect_upgrade_us, now - req);
	hist_add(&p->s.st.connect, (uint64_t)(now - p->connect_at_us));
}

static void
on_established(struct producer *p, struct lws *wsi)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[64];
	int port;

	connect_slot_release(p);
	/* Its own port: another wsflowd's server stream names it (run
	 * --receiver finds this connection's receiver by it). */
	if (getsockname(lws_get_socket_fd(wsi), (struct sockaddr *)&ss,
	    &sl) == 0 && addr_format(&ss, false, host, sizeof(host),
	    &port) == 0)
		STAT_SET(p->s.local_port, (uint64_t)port);
	connect_phases(p, lws_now_usecs());
	p->attempt = 0;
	p->open = true;
	p->failed = false;
	p->mismatch_run = 0;
	p->close_code = 0;
	p->close_why[0] = '\0';
	stream_set_error(&p->s, "");	/* healthy again */
	stream_set_state(&p->s, "sending");
	p->in_message = false;
	p->msg_sent = 0;
	p->waiting = false;
	p->close_now = p->close_sent = false;
	p->elen = p->ehead = 0;		/* a new server owes nothing */
	p->tokens = 0;
	p->tokens_at_us = p->progress_at_us = lws_now_usecs();
	p->progress_bytes = STAT_GET(p->s.st.bytes);
	STAT_ADD(p->w->totals.running, 1);
	log_stream(LOG_INFO, &p->s, "stream-open", "%s stream to %s",
	    wsflow_mode_name(p->s.mode), p->conf.url);
	lws_callback_on_writable(wsi);
}

/* The connection is gone: reconnect, or end the stream for good. */
static void
on_gone(struct producer *p, struct lws *wsi, bool was_open, const char *why)
{
	/* lws may call back for this wsi again: not with p, which may go. */
	lws_set_wsi_user(wsi, NULL);
	p->wsi = NULL;
	p->open = false;
	connect_slot_release(p);
	/* Not found by now, never: its ends may be another client's next. */
	stream_link_drop(&p->w->wd->reg, &p->s);
	lws_sul_cancel(&p->sul_rate);
	lws_sul_cancel(&p->sul_linger);
	if (was_open)
		STAT_SET(p->w->totals.running, STAT_GET(p->w->totals.running) - 1);
	/* Whichever came first (duration, stop) has said so already. */
	if (limit_reached(p))
		stream_set_end(&p->s, STREAM_FINISHED, "bytes limit", NULL);
	else if (p->w->wd->stopping)
		stream_set_end(&p->s, STREAM_STOPPED, "shutdown", NULL);
	if (p->failed && !p->done && !p->w->wd->stopping) {
		char error[sizeof(p->s.error)];

		stream_get_error(&p->s, error, sizeof(error));
		connect_failed(p, "protocol error", error);
		return;
	}
	if (p->failed) {
		stream_set_end(&p->s, STREAM_FAILED, "protocol error", NULL);
		producer_finish(p, "failed");
		return;
	}
	if (p->done || limit_reached(p) || p->w->wd->stopping) {
		producer_finish(p, p->s.end_state != NULL ? p->s.end_state :
		    STREAM_FINISHED);
		return;
	}
	connect_failed(p, was_open ? "connection lost" : "connect failed", why);
}

/*
 * The connection is up, the request about to go: when it goes to a port
 * this daemon listens on, the server stream that reads it may be ours,
 * and will look for this producer by the connection's ends.
 */
static void
link_offer(struct producer *p, struct lws *wsi)
{
	struct wsflowd *wd = p->w->wd;

	for (size_t i = 0; i < wd->nlisteners; i++)
		if (wd->listeners[i].port == p->tgt->url.port) {
			stream_link_offer(&wd->reg, &p->s,
			    lws_get_socket_fd(wsi));
			return;
		}
	STAT_SET(p->s.link_id, 0);
}

/* The configured extra headers, each line "Name: value\r\n". */
static int
append_headers(struct producer *p, void *in, size_t len)
{
	char **at = in, *end = *at + len;
	const char *h = p->conf.headers;

	while (h != NULL && *h != '\0') {
		size_t n = strcspn(h, "\n");

		if ((size_t)(end - *at) < n + 3) {
			log_stream(LOG_ERR, &p->s, "connect-failed", "the "
			    "configured headers do not fit in the request");
			return -1;
		}
		memcpy(*at, h, n);
		memcpy(*at + n, "\r\n", 2);
		*at += n + 2;
		h += n + (h[n] == '\n');
	}
	return 0;
}

static int
producer_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	struct producer *p = user;

	switch (reason) {
	case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
		/* Called with the certificate as user: ours is the wsi's. */
		if ((p = lws_wsi_user(wsi)) != NULL && p->wsi == wsi &&
		    p->tls_at_us == 0)
			p->tls_at_us = lws_now_usecs();
		return 0;
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		if (p == NULL)
			return 0;
		p->request_at_us = lws_now_usecs();
		link_offer(p, wsi);
		return append_headers(p, in, len);

	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (p == NULL)
			return -1;
		on_established(p, wsi);
		return 0;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return p != NULL && p->wsi == wsi ? on_writeable(p, wsi) : 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return p != NULL && p->wsi == wsi ? on_receive(p, wsi, in,
		    len) : 0;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (p == NULL)
			return 0;
		if (len >= 2) {
			p->close_code = ((const uint8_t *)in)[0] << 8 |
			    ((const uint8_t *)in)[1];
			snprintf(p->close_why, sizeof(p->close_why), "%.*s",
			    (int)(len - 2), (const char *)in + 2);
			log_stream(LOG_INFO, &p->s, NULL, "server closed with "
			    "%u", p->close_code);
		}
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (p != NULL && p->wsi == wsi) {
			char why[sizeof(p->s.error)];

			why_failed(p, wsi, in, why, sizeof(why));
			on_gone(p, wsi, false, why);
		}
		return 0;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (p != NULL && p->wsi == wsi) {
			char why[sizeof(p->s.error)];

			if (p->close_code != 0)
				snprintf(why, sizeof(why), "the server closed "
				    "the connection with %u%s%s", p->close_code,
				    p->close_why[0] ? " " : "", p->close_why);
			else
				snprintf(why, sizeof(why), "the connection was "
				    "lost: no close from the server");
			on_gone(p, wsi, true, why);
		}
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		/* lws tells protocols[0] of every wsi of the vhost. */
		if (lws_get_protocol(wsi) == NULL ||
		    lws_get_protocol(wsi)->callback != producer_callback)
			return 0;
		/* FALLTHROUGH */
	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
		/* Died before ESTABLISHED without an error callback. */
		if (p != NULL && p->wsi == wsi) {
			char why[sizeof(p->s.error)];

			why_failed(p, wsi, NULL, why, sizeof(why));
			on_gone(p, wsi, false, why);
		}
		return 0;
	default:
		return 0;
	}
}

const struct lws_protocols producer_protocol = {
	.name = "wsflow-producer",
	.callback = producer_callback,
	.rx_buffer_size = 256,	/* digests; lws keeps one per connection */
	/* Only a clamp on one send(): let a whole frame go at once. */
	.tx_packet_size = WSFLOW_FRAME_SIZE_MAX + WS_HEADER_MAX,
};

/* ---- start and stop ---- */

/* The parsed URL and Host: of an entry, one reference held. */
static struct target *
target_new(const char *url, char *err, size_t errlen)
{
	struct target *t;
	const char *why;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&t->refs, 1);
	if (url_parse(url, &t->url, &why) == -1) {
		snprintf(err, errlen, "bad url '%s': %s", url, why);
		free(t);
		return NULL;
	}
	/* RFC 7230 §5.4, RFC 6455 §4.1: the port when it is not the
	 * scheme's; an IPv6 literal in brackets. */
	snprintf(t->host, sizeof(t->host), strchr(t->url.host, ':') != NULL ?
	    "[%s]" : "%s", t->url.host);
	if (t->url.port != (t->url.tls ? 443 : 80))
		snprintf(t->host + strlen(t->host), sizeof(t->host) -
		    strlen(t->host), ":%d", t->url.port);
	return t;
}

/* Any thread: the last stream of an entry frees its target. */
static void
target_release(struct target *t)
{
	if (t != NULL && atomic_fetch_sub(&t->refs, 1) == 1)
		free(t);
}

static void
producer_free(struct producer *p)
{
	if (p->w != NULL)
		connect_slot_release(p);
	lws_sul_cancel(&p->sul_connect);
	lws_sul_cancel(&p->sul_rate);
	lws_sul_cancel(&p->sul_end);
	lws_sul_cancel(&p->sul_linger);
	batcher_free(&p->b);
	target_release(p->tgt);
	free(p->expect);
	free(p->conf.url);
	free(p->conf.tls_ca);
	free(p->conf.headers);
	free(p);
}

/*
 * Everything a producer needs but its worker's lws context; any thread.
 * Digest and batch size are the daemon's current ones (after a reload,
 * the new ones).
 */
static struct producer *
producer_new(struct wsflowd *wd, const struct producer_conf *pc,
    struct target *t, char *err, size_t errlen)
{
	struct producer *p;
	uint64_t batch;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->conf = *pc;
	p->tgt = t;
	atomic_fetch_add(&t->refs, 1);
	p->conf.url = strdup(pc->url);
	p->conf.tls_ca = pc->tls_ca ? strdup(pc->tls_ca) : NULL;
	p->conf.headers = pc->headers ? strdup(pc->headers) : NULL;
	p->ecap = EXPECT_INITIAL;
	p->expect = calloc(p->ecap, sizeof(*p->expect));
	batch = pc->batch_size ? pc->batch_size : wd->conf.server.batch_size;
	/* The workers' lws contexts time out connects and handshakes so. */
	p->timeout_us = (int64_t)wd->conf.server.handshake_timeout *
	    LWS_US_PER_SEC;
	/* Frame and message modes are cut by hand: no batch completes. */
	if (pc->mode == MODE_FRAME || pc->mode == MODE_MESSAGE)
		batch = UINT64_MAX;
	if (p->conf.url == NULL || (pc->tls_ca && p->conf.tls_ca == NULL) ||
	    (pc->headers && p->conf.headers == NULL) ||
	    p->expect == NULL ||
	    batcher_init(&p->b, wd->md, batch) == -1 ||
	    gen_seed(&p->gen) == -1) {
		snprintf(err, errlen, "out of memory");
		producer_free(p);
		return NULL;
	}
	snprintf(p->s.name, sizeof(p->s.name), "%s", pc->name);
	/* /metrics labels configured names only: ad-hoc ones grow. */
	p->s.adhoc = conf_find_producer(&wd->conf, pc->name) == NULL;
	snprintf(p->s.peer, sizeof(p->s.peer), "%s", pc->url);
	stream_set_state(&p->s, "connecting");
	return p;
}

/*
 * Main thread: build a producer, enter it in the registry and hand it to
 * a worker.  Registered before this returns, so that the caller's answer
 * is already true (`start` then `show` finds it) and a second start of
 * the same name, checked under the same lock, is refused.  With
 * `running` set, a producer of that name already listed is refused and
 * its id stored there; a reload passes NULL (the old one is stopping).
 */
/* Its start, as work for the worker it was given to. */
struct start_work {
	struct work	 k;
	struct producer	*p;
};

static void	start_run(struct worker *, struct work *);
static void	start_drop(struct worker *, struct work *);

static int
launch_one(struct wsflowd *wd, const struct producer_conf *pc,
    struct target *t, uint64_t id, int64_t delay_us, uint64_t *running,
    char *err, size_t errlen)
{
	struct producer *p;
	struct worker *w;
	struct start_work *sw;
	struct stream *s;

	if ((p = producer_new(wd, pc, t, err, errlen)) == NULL)
		return -1;
	if ((sw = calloc(1, sizeof(*sw))) == NULL) {
		snprintf(err, errlen, "out of memory");
		producer_free(p);
		return -1;
	}
	sw->k.run = start_run;
	sw->k.drop = start_drop;
	sw->p = p;
	p->start_delay_us = delay_us;
	w = worker_pick(wd);
	p->w = w;
	pthread_mutex_lock(&wd->reg.lock);
	if (running != NULL) {
		TAILQ_FOREACH(s, &wd->reg.streams, entry)
			if (s->role == ROLE_PRODUCER &&
			    strcmp(s->name, pc->name) == 0)
				break;
		if (s != NULL) {
			*running = s->id;
			pthread_mutex_unlock(&wd->reg.lock);
			snprintf(err, errlen, "producer '%s' is already "
			    "running as stream %llu", pc->name,
			    (unsigned long long)s->id);
			free(sw);
			producer_free(p);
			return -1;
		}
	}
	stream_publish_locked(&wd->reg, w, &p->s, id, ROLE_PRODUCER, pc->mode,
	    &producer_ops);
	pthread_mutex_unlock(&wd->reg.lock);
	atomic_fetch_add(&w->load, 1);
	/* A stop for it is posted after this: the inbox keeps the order. */
	worker_post(w, &sw->k);
	return 0;
}

/*
 * An entry's streams: parallel of them (the first gets id), each its
 * share of bytes, started ramp a second over the least loaded workers.
 * They share the entry's name: stop NAME ends them all, /metrics sums
 * them.
 */
uint32_t
producer_streams(const struct producer_conf *pc)
{
	return pc->parallel > 1 ? pc->parallel : 1;
}

int
producer_launch(struct wsflowd *wd, const struct producer_conf *pc,
    uint64_t *id, uint64_t *running, char *err, size_t errlen)
{
	struct producer_conf one = *pc;
	uint32_t n = producer_streams(pc);
	struct target *t;
	int rc = (int)n;

	if ((t = target_new(pc->url, err, errlen)) == NULL)
		return -1;
	/* In a row: wsflowctl run follows them as first .. first + n - 1. */
	if (*id == 0)
		*id = stream_new_ids(&wd->reg, n);
	for (uint32_t i = 0; i < n; i++) {
		if (pc->bytes != 0)
			one.bytes = pc->bytes / n + (i < pc->bytes % n ? 1 :
			    0) + (pc->bytes < n);	/* 0 would be endless */
		if (launch_one(wd, &one, t, *id + i,
		    pc->ramp ? (int64_t)i * LWS_US_PER_SEC / pc->ramp : 0,
		    i == 0 ? running : NULL, err, errlen) == -1) {
			if (i == 0) {
				rc = -1;
				break;
			}
			log_err("producer %s: stream %u of %u not started: %s",
			    pc->name, i + 1, n, err);
			rc = (int)i;	/* the started ones run on */
			break;
		}
	}
	target_release(t);
	return rc;
}

/* Worker: take over a launched producer and connect it. */
static void
start_run(struct worker *w, struct work *k)
{
	struct producer *p = ((struct start_work *)k)->p;

	worker_stream_attach(w, &p->s);
	STAT_ADD(w->totals.producers_total, 1);
	if ((p->vh = worker_client_vhost(w, p->conf.tls_ca)) == NULL) {
		producer_set_error(p, "cannot set up TLS with tls.ca %s",
		    p->conf.tls_ca);
		log_stream(LOG_ERR, &p->s, "connect-failed", "cannot set up "
		    "TLS with CA '%s'", p->conf.tls_ca);
		stream_set_end(&p->s, STREAM_FAILED, "not started",
		    "cannot set up TLS with tls.ca");
		producer_finish(p, "failed");
		return;
	}
	if (p->conf.duration != 0)
		lws_sul_schedule(w->ctx, 0, &p->sul_end, duration_over,
		    (lws_usec_t)p->conf.duration * LWS_US_PER_SEC);
	lws_sul_schedule(w->ctx, 0, &p->sul_connect, producer_connect,
	    LWS_US_PER_MS + p->start_delay_us);
}

/* A launched producer its worker never ran: the daemon stopped first. */
static void
start_drop(struct worker *w, struct work *k)
{
	struct producer *p = ((struct start_work *)k)->p;

	worker_stream_attach(w, &p->s);
	worker_stream_remove(w, &p->s);
	atomic_fetch_sub(&w->load, 1);
	producer_free(p);
}

/* End the message, collect owed digests, close 1000 (1001 on stop). */
static void
producer_stop(struct producer *p, bool going_away)
{
	p->done = true;
	p->going_away = p->going_away || going_away;
	if (p->wsi == NULL) {	/* backing off, or not yet connecting */
		producer_finish(p, p->s.end_state != NULL ? p->s.end_state :
		    STREAM_STOPPED);
		return;
	}
	p->ending = true;
	stream_set_state(&p->s, "ending");
	lws_sul_cancel(&p->sul_rate);
	lws_callback_on_writable(p->wsi);
}

static void
producer_finish(struct producer *p, const char *why)
{
	struct worker *w = p->w;
	char mism[64];

	if (STAT_GET(p->s.st.mismatched) > 0 && p->s.error[0] == '\0') {
		snprintf(mism, sizeof(mism), "%llu digests mismatched",
		    (unsigned long long)STAT_GET(p->s.st.mismatched));
		stream_set_error(&p->s, mism);	/* we are its writer */
	}
	stream_set_end(&p->s, STREAM_STOPPED, "stopped", NULL);
	log_stream_end(STAT_GET(p->s.st.mismatched) ? LOG_WARNING : LOG_INFO,
	    &p->s, "%s: %llu bytes sent, %llu digests, %llu "
	    "verified, %llu mismatched", why,
	    (unsigned long long)STAT_GET(p->s.st.bytes),
	    (unsigned long long)STAT_GET(p->s.st.digests),
	    (unsigned long long)STAT_GET(p->s.st.verified),
	    (unsigned long long)STAT_GET(p->s.st.mismatched));
	worker_stream_remove(w, &p->s);
	atomic_fetch_sub(&w->load, 1);
	producer_free(p);
}

/* After the worker's context is gone (backing off, say): free it. */
static void
producer_drop(struct stream *s)
{
	struct producer *p = (struct producer *)s;

	p->wsi = NULL;
	/* Its suls died with the context: do not touch them. */
	memset(&p->sul_connect, 0, sizeof(p->sul_connect));
	memset(&p->sul_rate, 0, sizeof(p->sul_rate));
	memset(&p->sul_end, 0, sizeof(p->sul_end));
	memset(&p->sul_linger, 0, sizeof(p->sul_linger));
	producer_free(p);
}

/* Rates every tick; a progress line every PROGRESS_US. */
static void
producer_tick(struct stream *s, int64_t now_us)
{
	struct producer *p = (struct producer *)s;
	char digest[2 * EVP_MAX_MD_SIZE + 1];
	uint64_t bytes, rate;

	stream_sample_rate(&p->s, now_us);
	/* One batch in flight and no digest: say why, once. */
	if (p->waiting && p->wsi != NULL && !p->stall_said && p->elen > 0 &&
	    now_us - p->expect[p->ehead].at_us > STALL_US) {
		p->stall_said = true;
		stream_set_state(&p->s, "stalled");	/* not streaming: say so */
		producer_set_error(p, "no digest for %d s: is it a wsflow "
		    "hashing server, with batch_size %llu as here?",
		    (int)(STALL_US / LWS_US_PER_SEC),
		    (unsigned long long)p->b.batch_size);
		log_stream(LOG_WARNING, &p->s, "digest-stall", "no digest for "
		    "%d s: is it a wsflow hashing server, and does its "
		    "batch_size match this producer's (%llu)?",
		    (int)(STALL_US / LWS_US_PER_SEC),
		    (unsigned long long)p->b.batch_size);
	}
	if (now_us - p->progress_at_us < PROGRESS_US)
		return;
	/* The rate over the whole interval, not the last short sample. */
	bytes = STAT_GET(p->s.st.bytes);
	rate = (bytes - p->progress_bytes) * (uint64_t)LWS_US_PER_SEC /
	    (uint64_t)(now_us - p->progress_at_us);
	p->progress_at_us = now_us;
	p->progress_bytes = bytes;
	/* Connecting, stalled: said once, not as 0.0 MB/s every 10 s.
	 * A parallel entry's streams are summed in one line (below). */
	if (p->wsi == NULL || !p->open || p->stall_said ||
	    p->conf.parallel > 1)
		return;
	stream_get_digest(&p->s, digest, sizeof(digest));
	log_progress(&p->s, bytes, rate, "%.1f MB sent, %llu digests "
	    "verified, %llu mismatched, %.1f MB/s, last %.16s...",
	    bytes / 1e6, (unsigned long long)STAT_GET(p->s.st.verified),
	    (unsigned long long)STAT_GET(p->s.st.mismatched), rate / 1e6,
	    digest);
}

/* An entry's streams as its progress line sums them. */
struct group_progress {
	char		 name[WSFLOW_NAME_MAX];
	const struct stream *first;	/* the lowest id: names the line */
	unsigned	 streams, open;
	uint64_t	 bytes, verified, mismatched;
	uint64_t	 last_bytes;	/* at the previous line */
};

static struct group_progress *
group_find(struct wsflowd *wd, const char *name)
{
	struct group_progress *g;

	for (size_t i = 0; i < wd->ngroups; i++)
		if (strcmp(wd->groups[i].name, name) == 0)
			return &wd->groups[i];
	if ((g = reallocarray(wd->groups, wd->ngroups + 1,
	    sizeof(*g))) == NULL)
		return NULL;
	wd->groups = g;
	g = &wd->groups[wd->ngroups++];
	memset(g, 0, sizeof(*g));
	snprintf(g->name, sizeof(g->name), "%s", name);
	return g;
}

void
producers_progress(struct wsflowd *wd, int64_t now_us)
{
	struct stream *s;
	size_t kept = 0;
	int64_t dt = now_us - wd->groups_at_us;

	if (wd->groups_at_us == 0)
		wd->groups_at_us = now_us;
	if (dt < PROGRESS_US)
		return;
	wd->groups_at_us = now_us;
	for (size_t i = 0; i < wd->ngroups; i++) {
		struct group_progress *g = &wd->groups[i];

		g->first = NULL;
		g->streams = g->open = 0;
		g->bytes = g->verified = g->mismatched = 0;
	}
	/* Under the lock: no stream of the sums goes while they are said. */
	pthread_mutex_lock(&wd->reg.lock);
	TAILQ_FOREACH(s, &wd->reg.streams, entry) {
		const struct producer *p = (const struct producer *)s;
		struct group_progress *g;

		if (s->role != ROLE_PRODUCER || p->conf.parallel <= 1 ||
		    (g = group_find(wd, s->name)) == NULL)
			continue;
		if (g->first == NULL || s->id < g->first->id)
			g->first = s;
		g->streams++;
		g->open += strcmp(stream_state(s), "sending") == 0;
		g->bytes += STAT_GET(s->st.bytes);
		g->verified += STAT_GET(s->st.verified);
		g->mismatched += STAT_GET(s->st.mismatched);
	}
	for (size_t i = 0; i < wd->ngroups; i++) {
		struct group_progress *g = &wd->groups[i];
		uint64_t rate;

		if (g->streams == 0)
			continue;	/* ended: forgotten below */
		/* New since the last lines: it began within the interval. */
		rate = g->bytes >= g->last_bytes ? (g->bytes - g->last_bytes) *
		    (uint64_t)LWS_US_PER_SEC / (uint64_t)dt : 0;
		log_progress(g->first, g->bytes, rate, "%u streams (%u "
			    "sending): %.1f MB sent, %llu digests verified, "
			    "%llu mismatched, %.1f MB/s", g->streams, g->open,
			    g->bytes / 1e6, (unsigned long long)g->verified,
			    (unsigned long long)g->mismatched, rate / 1e6);
		g->last_bytes = g->bytes;
	}
	pthread_mutex_unlock(&wd->reg.lock);
	for (size_t i = 0; i < wd->ngroups; i++)
		if (wd->groups[i].streams > 0)
			wd->groups[kept++] = wd->groups[i];
	wd->ngroups = kept;
}

void
producers_progress_free(struct wsflowd *wd)
{
	free(wd->groups);
	wd->groups = NULL;
	wd->ngroups = 0;
}

static void
stop_op(struct stream *s, bool going_away)
{
	stream_set_end(s, STREAM_STOPPED, going_away ? "shutdown" : "stopped",
	    NULL);
	producer_stop((struct producer *)s, going_away);
}

static const struct stream_ops producer_ops = {
	.stop = stop_op,
	.tick = producer_tick,
	.drop = producer_drop,
};
