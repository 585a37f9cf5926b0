/*
 * test_upgrade.c — the opening handshake of a plain listener
 * (daemon/upgrade.c) against RFC 6455 §4.2.
 *
 * upgrade_parse must call UPGRADE_OURS only what is plainly a valid
 * version-13 upgrade (§4.2.1), UPGRADE_MORE only an unfinished header
 * block that could still become one, and everything else UPGRADE_HTTP
 * (answered with an HTTP status).  upgrade_status must give each request
 * the status of spec §1; upgrade_reply the 101 of §4.2.2 with the accept
 * value of §1.3 / §4.2.2 item 5.4.
 *
 * Every input is passed in a buffer of exactly its length (no NUL after
 * it), so a sanitizer build catches a read past the end.
 *
 * TEST_SEED=n in the environment changes the random keys and mutations.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "tap.h"
#include "testutil.h"
#include "upgrade.h"

#define REQMAX		16384
#define RFC_KEY		"dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT	"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- helpers ---- */

static const char *
verdict_name(enum upgrade_verdict v)
{
	return v == UPGRADE_MORE ? "MORE" : v == UPGRADE_OURS ? "OURS" :
	    v == UPGRADE_HTTP ? "HTTP" : "(bad verdict)";
}

/* upgrade_parse on an exact-size copy of s[0..n). */
static enum upgrade_verdict
parse(const char *s, size_t n, struct upgrade *u)
{
	char *b = xmalloc(n);
	enum upgrade_verdict v;

	memcpy(b, s, n);
	memset(u, 0x5a, sizeof(*u));
	v = upgrade_parse(b, n, u);
	free(b);
	return v;
}

/* Base64 (RFC 4648 §4), independent of OpenSSL's. */
static void
b64(const uint8_t *in, size_t n, char *out)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = i + 1 < n ? a[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? a[v & 63] : '=';
	}
	out[o] = '\0';
}

/* §4.2.2 item 5.4: base64(SHA-1(key GUID)). */
static void
ref_accept(const char *key, char *out)
{
	char in[128];
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen;

	snprintf(in, sizeof(in), "%s%s", key, WS_GUID);
	if (EVP_Digest(in, strlen(in), md, &mdlen, EVP_sha1(), NULL) != 1) {
		fprintf(stderr, "EVP_Digest failed\n");
		exit(2);
	}
	b64(md, mdlen, out);
}

/* ---- requests as lines ---- */

/* RFC 6455 §1.3's example, to "/" (the parser takes any path). */
static const char *const rfc_lines[] = {
	"GET / HTTP/1.1",
	"Host: server.example.com",
	"Upgrade: websocket",
	"Connection: Upgrade",
	"Sec-WebSocket-Key: " RFC_KEY,
	"Origin: http://example.com",
	"Sec-WebSocket-Version: 13",
	NULL
};

enum { L_REQ, L_HOST, L_UPGRADE, L_CONNECTION, L_KEY, L_ORIGIN, L_VERSION,
    L_N };

/*
 * The RFC request with line `at` replaced by `with` (NULL: dropped;
 * at = -1: nothing replaced), then `extra` lines (NULL or a list ending
 * in NULL) before the blank line.  Returns its length.
 */
static size_t
request(char *out, int at, const char *with, const char *const *extra)
{
	size_t n = 0;

	for (int i = 0; i < L_N; i++) {
		const char *l = i == at ? with : rfc_lines[i];

		if (l != NULL)
			n += (size_t)snprintf(out + n, REQMAX - n, "%s\r\n", l);
	}
	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
		n += (size_t)snprintf(out + n, REQMAX - n, "%s\r\n", extra[i]);
	n += (size_t)snprintf(out + n, REQMAX - n, "\r\n");
	return n;
}

/* ---- the RFC example, paths, the reply ---- */

/* Is the reply a 101 of §4.2.2 for accept?  why says what is not. */
static bool
reply_ok(const char *r, size_t n, const char *accept, char *why, size_t wl)
{
	const char *p, *end;
	bool upgrade = false, connection = false, acc = false;

	if (n == 0 || n > UPGRADE_REPLY_MAX) {
		snprintf(why, wl, "length %zu (UPGRADE_REPLY_MAX %d)", n,
		    UPGRADE_REPLY_MAX);
		return false;
	}
	if (n < 13 || strncmp(r, "HTTP/1.1 101 ", 13) != 0) {
		snprintf(why, wl, "does not begin \"HTTP/1.1 101 \"");
		return false;
	}
	end = memmem(r, n, "\r\n\r\n", 4);
	if (end == NULL || (size_t)(end - r) + 4 != n) {
		snprintf(why, wl, "the first blank line is not its end");
		return false;
	}
	p = (const char *)memmem(r, n, "\r\n", 2) + 2;	/* status line */
	while (p < end + 2) {
		const char *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		const char *v;
		size_t nl, vl;

		if (colon == NULL) {
			snprintf(why, wl, "a header line without a colon");
			return false;
		}
		nl = (size_t)(colon - p);
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		vl = (size_t)(eol - v);
		if (nl == 7 && strncasecmp(p, "Upgrade", 7) == 0)
			upgrade = vl == 9 && strncasecmp(v, "websocket", 9) == 0;
		else if (nl == 10 && strncasecmp(p, "Connection", 10) == 0)
			connection = vl == 7 && strncasecmp(v, "Upgrade", 7) == 0;
		else if (nl == 20 && strncasecmp(p, "Sec-WebSocket-Accept",
		    20) == 0)
			acc = vl == strlen(accept) && memcmp(v, accept, vl) == 0;
		else if (nl > 14 && strncasecmp(p, "Sec-WebSocket-", 14) == 0) {
			snprintf(why, wl, "an unasked-for %.*s", (int)nl, p);
			return false;
		}
		p = eol + 2;
	}
	if (!upgrade || !connection || !acc) {
		snprintf(why, wl, "Upgrade: websocket %s, Connection: Upgrade "
		    "%s, Sec-WebSocket-Accept: %s %s", upgrade ? "ok" : "missing",
		    connection ? "ok" : "missing", accept, acc ? "ok" :
		    "missing or wrong");
		return false;
	}
	return true;
}

static void
test_rfc_example(void)
{
	char req[REQMAX], out[UPGRADE_REPLY_MAX + 64], why[200];
	size_t n = request(req, -1, NULL, NULL), rn;
	struct upgrade u;
	enum upgrade_verdict v;

	v = parse(req, n, &u);
	ok(v == UPGRADE_OURS, "RFC 6455 §1.3 request to /: OURS (got %s)",
	    verdict_name(v));
	ok(v == UPGRADE_OURS && strcmp(u.path, "/") == 0 &&
	    strcmp(u.key, RFC_KEY) == 0 && u.head_len == n,
	    "... path \"/\", key " RFC_KEY ", head_len %zu (got %zu)", n,
	    u.head_len);

	/* The accept value is the RFC's own example (§1.3). */
	{
		char acc[64];

		ref_accept(RFC_KEY, acc);
		ok(strcmp(acc, RFC_ACCEPT) == 0, "test's own reference: "
		    "accept for the RFC key is " RFC_ACCEPT);
	}
	memset(out, 0x5a, sizeof(out));
	rn = upgrade_reply(&u, "", out, sizeof(out));
	{
		bool good = reply_ok(out, rn, RFC_ACCEPT, why, sizeof(why));
		char esc[2 * UPGRADE_REPLY_MAX + 64];
		size_t e = 0;

		ok(good, "upgrade_reply: \"HTTP/1.1 101\", Upgrade: websocket, "
		    "Connection: Upgrade, Sec-WebSocket-Accept: " RFC_ACCEPT
		    ", ending in the blank line%s%s", good ? "" : ": ",
		    good ? "" : why);
		for (size_t i = 0; i < rn && i < sizeof(out) &&
		    e + 3 < sizeof(esc); i++) {
			if (out[i] == '\r' || out[i] == '\n') {
				esc[e++] = '\\';
				esc[e++] = out[i] == '\r' ? 'r' : 'n';
			} else
				esc[e++] = out[i];
		}
		esc[e] = '\0';
		diag("reply (%zu octets): %s", rn, esc);
	}
	{
		char small[UPGRADE_REPLY_MAX];
		size_t r0 = upgrade_reply(&u, "", small, 0);
		size_t r10 = upgrade_reply(&u, "", small, 10);
		size_t rless = rn > 0 ? upgrade_reply(&u, "", small, rn - 1) : 1;
		size_t rplus = rn > 0 && rn + 1 <= sizeof(out) ?
		    upgrade_reply(&u, "", out, rn + 1) : 0;

		ok(r0 == 0 && r10 == 0 && rless == 0, "upgrade_reply into 0, "
		    "10 and %zu octets (one short): 0 (got %zu, %zu, %zu)",
		    rn - 1, r0, r10, rless);
		ok(rplus == rn, "upgrade_reply into %zu octets (room for a NUL "
		    "too): %zu (got %zu)", rn + 1, rn, rplus);
	}
	{
		char out2[UPGRADE_REPLY_MAX];
		size_t r2 = upgrade_reply(&u, "", out2, sizeof(out2));

		ok(r2 == rn && r2 > 0, "the reply fits UPGRADE_REPLY_MAX (%d) "
		    "(got %zu)", UPGRADE_REPLY_MAX, r2);
	}
}

/* server.subprotocols: the first offered that is allowed, else none. */
static void
test_subprotocols(void)
{
	static const struct {
		const char *headers;	/* extra request lines */
		const char *allowed;	/* lines, NULL: the key unset */
		const char *want;
	} cases[] = {
		{ "Sec-WebSocket-Protocol: foo\r\n", NULL, "" },
		{ "Sec-WebSocket-Protocol: foo\r\n", "bar", "" },
		{ "Sec-WebSocket-Protocol: foo\r\n", "foo", "foo" },
		{ "Sec-WebSocket-Protocol: foo, bar\r\n", "bar\nfoo", "foo" },
		{ "Sec-WebSocket-Protocol: x,  bar \r\n", "bar", "bar" },
		{ "Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: b\r\n",
		    "b", "b" },
		{ "Sec-WebSocket-Protocol: Foo\r\n", "foo", "" },
		{ "Sec-WebSocket-Protocol: foobar\r\n", "foo", "" },
		{ "Sec-WebSocket-Protocol: fo\r\n", "foo", "" },
		{ "Sec-WebSocket-Protocol: ,,\r\n", "foo", "" },
		{ "", "foo", "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char req[REQMAX], got[sizeof(((struct upgrade *)0)->protocols)];
		char out[UPGRADE_REPLY_MAX], shown[64];
		struct upgrade u;
		size_t n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n"
		    "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		    "Sec-WebSocket-Key: " RFC_KEY "\r\n"
		    "Sec-WebSocket-Version: 13\r\n%s\r\n", cases[i].headers);
		enum upgrade_verdict v = parse(req, n, &u);

		upgrade_subprotocol(&u, cases[i].allowed, got, sizeof(got));
		snprintf(shown, sizeof(shown), "%s", cases[i].allowed ?
		    cases[i].allowed : "(unset)");
		for (char *c = shown; (c = strchr(c, '\n')) != NULL;)
			*c = ' ';	/* one TAP line */
		ok(v == UPGRADE_OURS && strcmp(got, cases[i].want) == 0,
		    "subprotocol offered [%.*s] allowed [%s]: \"%s\" (got %s "
		    "\"%s\")", (int)strcspn(cases[i].headers, "\r"),
		    cases[i].headers, shown, cases[i].want, verdict_name(v),
		    got);
		n = upgrade_reply(&u, got, out, sizeof(out));
		if (*got)
			ok(n > 0 && strstr(out, "\r\nSec-WebSocket-Protocol: ") &&
			    strncmp(strstr(out, "Protocol: ") + 10, got,
			    strlen(got)) == 0 && memcmp(out + n - 4, "\r\n\r\n",
			    4) == 0, "... the 101 selects it");
		else
			ok(n > 0 && strstr(out, "Sec-WebSocket-Protocol") == NULL,
			    "... the 101 has no Sec-WebSocket-Protocol");
	}
	/* The longest kept offer, selected, still fits the reply. */
	{
		char req[REQMAX], name[256], got[256], out[UPGRADE_REPLY_MAX];
		struct upgrade u;
		size_t n;

		memset(name, 'p', 255);
		name[255] = '\0';
		n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n"
		    "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		    "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: "
		    "13\r\nSec-WebSocket-Protocol: %s\r\n\r\n", name);
		(void)parse(req, n, &u);
		upgrade_subprotocol(&u, name, got, sizeof(got));
		n = upgrade_reply(&u, got, out, sizeof(out));
		ok(strcmp(got, name) == 0 && n > 0, "a 255-octet subprotocol "
		    "is selected and its 101 fits UPGRADE_REPLY_MAX (%zu)", n);
	}
}

static void
test_paths(void)
{
	static const char *const paths[] = { "/", "/stream", "/frame",
	    "/message", "/stream?x=1&y=%20", "/a/b/c" };
	char req[REQMAX], line[400];

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct upgrade u;
		enum upgrade_verdict v;
		size_t n;

		snprintf(line, sizeof(line), "GET %s HTTP/1.1", paths[i]);
		n = request(req, L_REQ, line, NULL);
		v = parse(req, n, &u);
		ok(v == UPGRADE_OURS && strcmp(u.path, paths[i]) == 0 &&
		    u.head_len == n, "GET %s: OURS, path filled in (got %s)",
		    paths[i], verdict_name(v));
	}

	/* The longest path that fits u.path, and one that cannot. */
	{
		char path[300];
		struct upgrade u;
		enum upgrade_verdict v;
		size_t n;

		path[0] = '/';
		memset(path + 1, 'p', UPGRADE_PATH_MAX - 2);
		path[UPGRADE_PATH_MAX - 1] = '\0';
		snprintf(line, sizeof(line), "GET %s HTTP/1.1", path);
		n = request(req, L_REQ, line, NULL);
		v = parse(req, n, &u);
		ok(v == UPGRADE_OURS && strcmp(u.path, path) == 0, "a path of "
		    "%d octets (UPGRADE_PATH_MAX - 1): OURS, whole (got %s)",
		    UPGRADE_PATH_MAX - 1, verdict_name(v));

		memset(path + 1, 'p', sizeof(path) - 2);
		path[sizeof(path) - 1] = '\0';
		snprintf(line, sizeof(line), "GET %s HTTP/1.1", path);
		n = request(req, L_REQ, line, NULL);
		v = parse(req, n, &u);
		ok(v == UPGRADE_HTTP, "a path of %zu octets (cannot be held in "
		    "u.path): HTTP (got %s)", sizeof(path) - 1,
		    verdict_name(v));
	}
}

/* Random keys: accept against SHA-1 and base64 done here. */
static void
test_random_keys(void)
{
	char req[REQMAX], line[100], key[40], acc[64], out[UPGRADE_REPLY_MAX];
	char why[200], first[300] = "";
	size_t bad = 0;

	for (int t = 0; t < 300; t++) {
		uint8_t nonce[16];
		struct upgrade u;
		enum upgrade_verdict v;
		size_t n, rn;

		for (int i = 0; i < 16; i++)
			nonce[i] = (uint8_t)(rnd() >> 56);
		b64(nonce, 16, key);
		ref_accept(key, acc);
		snprintf(line, sizeof(line), "Sec-WebSocket-Key: %s", key);
		n = request(req, L_KEY, line, NULL);
		v = parse(req, n, &u);
		if (v != UPGRADE_OURS || strcmp(u.key, key) != 0) {
			if (bad++ == 0)
				snprintf(first, sizeof(first), "key %s: %s",
				    key, verdict_name(v));
			continue;
		}
		rn = upgrade_reply(&u, "", out, sizeof(out));
		if (!reply_ok(out, rn, acc, why, sizeof(why)) && bad++ == 0)
			snprintf(first, sizeof(first), "key %s: %s", key, why);
	}
	ok(bad == 0, "300 random 16-octet keys: OURS, key kept, accept = "
	    "base64(SHA-1(key GUID))");
	if (bad)
		diag("%zu failed; first: %s", bad, first);
}

/* ---- unfinished header blocks ---- */

static void
test_prefixes(void)
{
	char req[REQMAX];
	size_t n = request(req, -1, NULL, NULL), bad = 0, first = 0;
	enum upgrade_verdict fv = UPGRADE_MORE;

	for (size_t k = 0; k < n; k++) {
		struct upgrade u;
		enum upgrade_verdict v = parse(req, k, &u);

		if (v != UPGRADE_MORE && bad++ == 0) {
			first = k;
			fv = v;
		}
	}
	ok(bad == 0, "every proper prefix (0..%zu octets) of the RFC request: "
	    "MORE", n - 1);
	if (bad)
		diag("%zu prefixes not MORE; first: %zu octets, %s", bad, first,
		    verdict_name(fv));

	/* Ending on half the blank line: CR LF CR. */
	{
		struct upgrade u;
		enum upgrade_verdict v = parse(req, n - 1, &u);

		ok(v == UPGRADE_MORE, "the request without its last LF: MORE "
		    "(got %s)", verdict_name(v));
	}
}

/* ---- accepted spellings ---- */

static void
test_spellings(void)
{
	static const struct {
		int		 at;
		const char	*with;
		const char	*what;
	} v[] = {
		{ L_HOST, "host: server.example.com", "host: lowercase" },
		{ L_HOST, "HOST:server.example.com", "HOST: no space" },
		{ L_UPGRADE, "Upgrade: WebSocket", "Upgrade: WebSocket" },
		{ L_UPGRADE, "upgrade: WEBSOCKET", "upgrade: WEBSOCKET" },
		{ L_UPGRADE, "Upgrade:\twebsocket  ", "Upgrade: tab before, "
		    "spaces after the value" },
		{ L_CONNECTION, "Connection: keep-alive, Upgrade",
		    "Connection: keep-alive, Upgrade" },
		{ L_CONNECTION, "connection: Upgrade, keep-alive",
		    "connection: Upgrade, keep-alive" },
		{ L_CONNECTION, "CONNECTION: keep-alive,upgrade",
		    "CONNECTION: keep-alive,upgrade" },
		{ L_KEY, "sec-websocket-key: " RFC_KEY, "sec-websocket-key" },
		{ L_KEY, "SEC-WEBSOCKET-KEY:  " RFC_KEY " ", "SEC-WEBSOCKET-KEY "
		    "with spaces around the value" },
		{ L_VERSION, "sec-websocket-version: 13", "sec-websocket-version" },
		{ L_VERSION, "Sec-WebSocket-Version:13", "Version without a space" },
		{ L_ORIGIN, NULL, "no Origin (not a browser)" },
		{ L_ORIGIN, "User-Agent: wsflow-test/1", "another header" },
	};
	char req[REQMAX];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct upgrade u;
		size_t n = request(req, v[i].at, v[i].with, NULL);
		enum upgrade_verdict r = parse(req, n, &u);

		ok(r == UPGRADE_OURS && strcmp(u.key, RFC_KEY) == 0 &&
		    u.head_len == n, "%s: OURS (got %s)", v[i].what,
		    verdict_name(r));
	}

	/* The headers in another order. */
	{
		static const char s[] = "GET /stream HTTP/1.1\r\n"
		    "Sec-WebSocket-Version: 13\r\n"
		    "Sec-WebSocket-Key: " RFC_KEY "\r\n"
		    "Connection: Upgrade\r\n"
		    "Upgrade: websocket\r\n"
		    "Host: 127.0.0.1:9000\r\n\r\n";
		struct upgrade u;
		enum upgrade_verdict r = parse(s, sizeof(s) - 1, &u);

		ok(r == UPGRADE_OURS && strcmp(u.path, "/stream") == 0,
		    "headers in reverse order, Host with a port: OURS (got %s)",
		    verdict_name(r));
	}
}

/* ---- what is not ours ---- */

static void
test_not_ours(void)
{
	static const struct {
		int		 at;
		const char	*with;
		const char	*what;
	} v[] = {
		{ L_UPGRADE, NULL, "no Upgrade" },
		{ L_CONNECTION, NULL, "no Connection" },
		{ L_KEY, NULL, "no Sec-WebSocket-Key" },
		{ L_HOST, NULL, "no Host" },
		{ L_VERSION, NULL, "no Sec-WebSocket-Version" },
		{ L_UPGRADE, "Upgrade: h2c", "Upgrade: h2c" },
		{ L_UPGRADE, "Upgrade: websocketx", "Upgrade: websocketx" },
		{ L_CONNECTION, "Connection: keep-alive", "Connection: "
		    "keep-alive" },
		{ L_CONNECTION, "Connection: Upgraded", "Connection: Upgraded" },
		{ L_REQ, "POST / HTTP/1.1", "POST" },
		{ L_REQ, "PUT / HTTP/1.1", "PUT" },
		{ L_REQ, "get / HTTP/1.1", "get (methods are case-sensitive)" },
		{ L_HOST, "Hostname: server.example.com", "Hostname: but no "
		    "Host" },
		{ L_UPGRADE, "Upgrade-Insecure-Requests: 1",
		    "Upgrade-Insecure-Requests: but no Upgrade" },
		{ L_CONNECTION, "Proxy-Connection: Upgrade",
		    "Proxy-Connection: but no Connection" },
		{ L_KEY, "Sec-WebSocket-Key2: " RFC_KEY,
		    "Sec-WebSocket-Key2: but no Sec-WebSocket-Key" },
		{ L_REQ, "GET / HTTP/1.0", "HTTP/1.0" },
		{ L_KEY, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA",
		    "key of 15 octets (20 characters)" },
		{ L_KEY, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=",
		    "key of 17 octets (24 characters, one =)" },
		{ L_KEY, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA",
		    "key of 18 octets (24 characters, no =)" },
		{ L_KEY, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",
		    "key without its padding" },
		{ L_KEY, "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==",
		    "key not base64 (!)" },
		{ L_KEY, "Sec-WebSocket-Key: dGhlIHNhbX BsZSBub25jZQ=",
		    "key with a space inside" },
		{ L_KEY, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==AAAA",
		    "key of 20 octets" },
		{ L_KEY, "Sec-WebSocket-Key:", "empty key" },
		{ L_VERSION, "Sec-WebSocket-Version: 8", "Sec-WebSocket-Version: "
		    "8" },
		{ L_VERSION, "Sec-WebSocket-Version: 131", "Sec-WebSocket-Version"
		    ": 131" },
		{ L_VERSION, "Sec-WebSocket-Version:", "empty "
		    "Sec-WebSocket-Version" },
	};
	static const char *const proto[] = { "Sec-WebSocket-Protocol: chat",
	    NULL };
	static const char *const folded[] = { "X-Thing: a",
	    " folded: b", NULL };
	char req[REQMAX];
	struct upgrade u;
	enum upgrade_verdict r;
	size_t n;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		n = request(req, v[i].at, v[i].with, NULL);
		r = parse(req, n, &u);
		ok(r == UPGRADE_HTTP, "%s: HTTP (got %s)", v[i].what,
		    verdict_name(r));
	}
	/* Spec §1: offered subprotocols do not refuse; none is selected. */
	n = request(req, -1, NULL, proto);
	r = parse(req, n, &u);
	ok(r == UPGRADE_OURS, "Sec-WebSocket-Protocol offered: OURS (got %s)",
	    verdict_name(r));
	n = request(req, -1, NULL, folded);
	r = parse(req, n, &u);
	ok(r == UPGRADE_HTTP, "an obsolete folded header line: HTTP (got %s)",
	    verdict_name(r));

	{
		static const char s[] = "GET /healthz HTTP/1.1\r\n"
		    "Host: localhost:9000\r\nUser-Agent: curl/7.88.1\r\n"
		    "Accept: */*\r\n\r\n";

		r = parse(s, sizeof(s) - 1, &u);
		ok(r == UPGRADE_HTTP, "plain GET /healthz: HTTP (got %s)",
		    verdict_name(r));
	}
	{
		static const char s[] = "GET /metrics HTTP/1.1\r\n\r\n";

		r = parse(s, sizeof(s) - 1, &u);
		ok(r == UPGRADE_HTTP, "bare GET /metrics: HTTP (got %s)",
		    verdict_name(r));
	}
	{
		/* Bare LF lines: refused at once, nobody waits for a timeout. */
		static const char s[] = "GET / HTTP/1.1\nHost: h\n"
		    "Upgrade: websocket\nConnection: Upgrade\n"
		    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n"
		    "Sec-WebSocket-Version: 13\n\n";

		r = parse(s, sizeof(s) - 1, &u);
		ok(r == UPGRADE_HTTP, "an upgrade with bare LF lines: HTTP "
		    "(got %s)", verdict_name(r));
	}
}

/* ---- sizes, NULs, garbage ---- */

static void
test_limits(void)
{
	char *req = xmalloc(REQMAX);
	struct upgrade u;
	enum upgrade_verdict r;
	static const size_t over[] = { UPGRADE_HEAD_MAX + 1,
	    UPGRADE_HEAD_MAX + 100, 2 * UPGRADE_HEAD_MAX, REQMAX - 1 };

	/* A start that is fine, padding, never a blank line. */
	for (size_t i = 0; i < sizeof(over) / sizeof(over[0]); i++) {
		size_t n = request(req, -1, NULL, NULL) - 2;	/* no blank */

		n += (size_t)snprintf(req + n, REQMAX - n, "X-Pad: ");
		memset(req + n, 'a', over[i] - n);
		r = parse(req, over[i], &u);
		ok(r == UPGRADE_HTTP, "%zu octets of header without the blank "
		    "line (more than UPGRADE_HEAD_MAX): HTTP, not MORE (got %s)",
		    over[i], verdict_name(r));
	}

	/* Valid requests of exactly UPGRADE_HEAD_MAX and one more. */
	for (size_t want = UPGRADE_HEAD_MAX; want <= UPGRADE_HEAD_MAX + 1;
	    want++) {
		char pad[UPGRADE_HEAD_MAX + 16];
		const char *extra[] = { pad, NULL };
		size_t base = request(req, -1, NULL, NULL), n;

		/* "X-Pad: " + k octets + CRLF adds k + 9 */
		memcpy(pad, "X-Pad: ", 7);
		memset(pad + 7, 'b', want - base - 9);
		pad[7 + want - base - 9] = '\0';
		n = request(req, -1, NULL, extra);
		if (n != want) {
			ok(0, "test bug: padded request is %zu, not %zu", n,
			    want);
			continue;
		}
		r = parse(req, n, &u);
		if (want == UPGRADE_HEAD_MAX)
			ok(r == UPGRADE_OURS && u.head_len == n, "a valid "
			    "request of exactly UPGRADE_HEAD_MAX (%zu) octets: "
			    "OURS (got %s)", n, verdict_name(r));
		else
			ok(r == UPGRADE_HTTP, "a valid request of "
			    "UPGRADE_HEAD_MAX + 1 (%zu) octets: HTTP (got %s)", n,
			    verdict_name(r));
	}

	/* NULs. */
	{
		char line[100];
		size_t n;

		snprintf(line, sizeof(line), "Origin: http://exa~mple.com");
		n = request(req, L_ORIGIN, line, NULL);
		*(char *)memchr(req, '~', n) = '\0';
		r = parse(req, n, &u);
		ok(r == UPGRADE_HTTP, "a NUL inside a header value: HTTP (got %s)",
		    verdict_name(r));

		n = request(req, L_REQ, "GET /str~eam HTTP/1.1", NULL);
		*(char *)memchr(req, '~', n) = '\0';
		r = parse(req, n, &u);
		ok(r == UPGRADE_HTTP, "a NUL inside the path: HTTP (got %s)",
		    verdict_name(r));

		n = request(req, L_ORIGIN, "X-Nul: a", NULL);
		memcpy(strstr(req, "X-Nul"), "\0-Nul", 5);
		r = parse(req, n, &u);
		ok(r == UPGRADE_HTTP, "a NUL starting a header line: HTTP (got %s)",
		    verdict_name(r));

		/* Unfinished and already holding a NUL: can never be ours. */
		n = request(req, -1, NULL, NULL);
		req[20] = '\0';
		r = parse(req, 40, &u);
		ok(r != UPGRADE_OURS, "an unfinished block holding a NUL: not "
		    "OURS (got %s)", verdict_name(r));
		if (r == UPGRADE_MORE)
			diag("note: MORE for a block that can never be ours");
	}

	/* Garbage. */
	{
		static const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x00, 0xf8,
		    0x01, 0x00, 0x00, 0xf4, 0x03, 0x03, 0x5a, 0x11, 0x8e, 0x20,
		    0x00, 0x00, 0x3e, 0x13, 0x02, 0x13, 0x03 };
		char g[600];
		size_t http = 0, ours = 0, more = 0;

		r = parse((const char *)hello, sizeof(hello), &u);
		ok(r == UPGRADE_HTTP, "the start of a TLS ClientHello: HTTP (got "
		    "%s)", verdict_name(r));
		for (int t = 0; t < 2000; t++) {
			size_t n = 16 + rnd() % 500;

			for (size_t i = 0; i < n; i++)
				g[i] = (char)(rnd() >> 56);
			memcpy(g + n, "\r\n\r\n", 4);
			r = parse(g, n + 4, &u);
			http += r == UPGRADE_HTTP;
			ours += r == UPGRADE_OURS;
			more += r == UPGRADE_MORE;
		}
		ok(http == 2000, "2000 random binary blocks ending in a blank "
		    "line: HTTP (%zu MORE, %zu OURS)", more, ours);

		ours = more = 0;
		for (int t = 0; t < 2000; t++) {
			size_t n = 1 + rnd() % 500;

			for (size_t i = 0; i < n; i++)
				g[i] = (char)(0x20 + rnd() % 0x5f);
			r = parse(g, n, &u);
			ours += r == UPGRADE_OURS;
			more += r == UPGRADE_MORE;
		}
		ok(ours == 0, "2000 runs of printable garbage with no blank "
		    "line: never OURS");
		if (more)
			diag("note: %zu of them MORE (unfinished, so allowed)",
			    more);
	}
	free(req);
}

/* ---- pipelined octets after the blank line ---- */

static void
test_pipelined(void)
{
	char req[REQMAX];
	size_t n = request(req, L_REQ, "GET /frame HTTP/1.1", NULL);
	static const uint8_t tails[][12] = {
		{ 0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51,
		    0x58, 0x00 },
		{ '\r', '\n', '\r', '\n', 0, 0, 0, 0, 'G', 'E', 'T', ' ' },
		{ 'P', 'O', 'S', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/' },
	};

	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		struct upgrade u;
		enum upgrade_verdict r;

		memcpy(req + n, tails[i], sizeof(tails[i]));
		r = parse(req, n + sizeof(tails[i]), &u);
		ok(r == UPGRADE_OURS && u.head_len == n &&
		    strcmp(u.path, "/frame") == 0, "12 octets pipelined after "
		    "the blank line (#%zu: %s): OURS, head_len %zu (got %s, "
		    "%zu)", i, i == 0 ? "a masked frame" : i == 1 ?
		    "CRLFCRLF and NULs" : "another request", n,
		    verdict_name(r), r == UPGRADE_OURS ? u.head_len : 0);
	}
	{
		struct upgrade u;
		enum upgrade_verdict r;

		memset(req + n, 0, 5000);
		r = parse(req, n + 5000, &u);
		ok(r == UPGRADE_OURS && u.head_len == n, "5000 NULs pipelined "
		    "(input longer than UPGRADE_HEAD_MAX): OURS (got %s)",
		    verdict_name(r));
	}
}

/* ---- robustness: mutated requests ---- */

static void
test_mutations(void)
{
	char base[REQMAX], m[REQMAX];
	size_t bn = request(base, -1, NULL, NULL), odd = 0, ours = 0;
	char first[200] = "";

	for (int t = 0; t < 30000; t++) {
		size_t n = bn, k = 1 + rnd() % 3;
		struct upgrade u;
		enum upgrade_verdict r;

		memcpy(m, base, bn);
		while (k-- > 0) {
			size_t at = rnd() % n;
			char c = rnd() % 4 == 0 ? (char)(rnd() >> 56) :
			    "\r\n :,\t=/aZ0\0"[rnd() % 13];

			switch (rnd() % 3) {
			case 0:
				m[at] = c;
				break;
			case 1:
				memmove(m + at + 1, m + at, n - at);
				m[at] = c;
				n++;
				break;
			default:
				memmove(m + at, m + at + 1, n - at - 1);
				n--;
				break;
			}
		}
		r = parse(m, n, &u);
		if (r != UPGRADE_OURS)
			continue;
		ours++;
		if (u.head_len > n || u.head_len < 4 ||
		    memcmp(m + u.head_len - 4, "\r\n\r\n", 4) != 0 ||
		    memchr(u.path, '\0', sizeof(u.path)) == NULL ||
		    u.path[0] != '/' ||
		    memchr(u.key, '\0', sizeof(u.key)) == NULL ||
		    strlen(u.key) != 24 || memchr(m, '\0', u.head_len) != NULL) {
			if (odd++ == 0)
				snprintf(first, sizeof(first), "mutation %d: "
				    "head_len %zu of %zu", t, u.head_len, n);
		}
	}
	ok(odd == 0, "30000 mutated requests (%zu OURS): every OURS has "
	    "head_len at a blank line, a NUL-free head, a path from /, a "
	    "24-character key", ours);
	if (odd)
		diag("%zu odd; first: %s", odd, first);
}

/* ---- the answer each request gets (spec §1, RFC 7231) ---- */

static void
test_status(void)
{
#define UPG	"Upgrade: websocket\r\nConnection: Upgrade\r\n"
#define KEY	"Sec-WebSocket-Key: " RFC_KEY "\r\n"
#define V13	"Sec-WebSocket-Version: 13\r\n"
	static const struct {
		const char	*req;
		bool		 ws_path;
		unsigned	 status;
		const char	*what;
	} v[] = {
		{ "GET /stream HTTP/1.1\r\nHost: h\r\n" UPG KEY V13 "\r\n",
		    true, 101, "a valid upgrade" },
		{ "GET /stream HTTP/1.1\r\nHost: h\r\n" UPG KEY V13
		    "Sec-WebSocket-Protocol: foo, bar\r\n\r\n", true, 101,
		    "subprotocols offered: upgraded, none selected" },
		{ "GET /nope HTTP/1.1\r\nHost: h\r\n" UPG KEY V13 "\r\n",
		    false, 404, "an upgrade to an unknown path" },
		{ "GET /stream HTTP/1.1\r\nHost: h\r\n" UPG KEY
		    "Sec-WebSocket-Version: 8\r\n\r\n", true, 426,
		    "version 8" },
		{ "GET /stream HTTP/1.1\r\nHost: h\r\n" UPG KEY V13 V13 "\r\n",
		    true, 426, "two version headers" },
		{ "GET /stream HTTP/1.1\r\nHost: h\r\n" UPG V13 "\r\n",
		    true, 400, "no key" },
		{ "GET /stream HTTP/1.1\r\n" UPG KEY V13 "\r\n", true, 400,
		    "no Host" },
		{ "GET /stream HTTP/1.0\r\nHost: h\r\n" UPG KEY V13 "\r\n",
		    true, 400, "an HTTP/1.0 upgrade" },
		{ "GET /stream HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
		    KEY V13 "\r\n", true, 400, "no Connection: Upgrade" },
		{ "POST /stream HTTP/1.1\r\nHost: h\r\n" UPG KEY V13 "\r\n",
		    true, 405, "a POST upgrade" },
		{ "HEAD /stream HTTP/1.1\r\nHost: h\r\n" UPG KEY V13 "\r\n",
		    true, 400, "a HEAD upgrade" },
		{ "GET /stream HTTP/1.1\r\nHost: h\r\n\r\n", true, 426,
		    "a plain GET of a WebSocket path" },
		{ "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", false, 200,
		    "GET /healthz" },
		{ "HEAD /metrics HTTP/1.1\r\nHost: h\r\n\r\n", false, 200,
		    "HEAD /metrics" },
		{ "GET /healthz HTTP/1.0\r\n\r\n", false, 200,
		    "HTTP/1.0 without Host" },
		{ "GET /healthz HTTP/1.1\r\n\r\n", false, 400,
		    "HTTP/1.1 without Host" },
		{ "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		    false, 400, "two Host headers" },
		{ "POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n",
		    false, 405, "POST with a body" },
		{ "PUT /healthz HTTP/1.1\r\nHost: h\r\n\r\n", false, 405, "PUT" },
		{ "DELETE /healthz HTTP/1.1\r\nHost: h\r\n\r\n", false, 405,
		    "DELETE" },
		{ "OPTIONS /healthz HTTP/1.1\r\nHost: h\r\n\r\n", false, 405,
		    "OPTIONS" },
		{ "PATCH /healthz HTTP/1.1\r\nHost: h\r\n\r\n", false, 405,
		    "PATCH" },
		{ "get /healthz HTTP/1.1\r\nHost: h\r\n\r\n", false, 405,
		    "lowercase get" },
		{ "GET /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n",
		    false, 400, "GET with a body" },
		{ "GET /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		    false, 200, "GET with Content-Length: 0" },
		{ "GET /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n",
		    false, 400, "a Content-Length that is no number" },
		{ "GET /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n"
		    "Content-Length: 2\r\n\r\n", false, 400,
		    "two Content-Lengths that differ" },
		{ "GET /healthz HTTP/1.1\r\nHost: h\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n", false, 400,
		    "Transfer-Encoding: chunked" },
		{ "GET /stream HTTP/1.1\r\nHost: h\r\n" UPG KEY V13
		    "Transfer-Encoding: chunked\r\n\r\n", true, 400,
		    "an upgrade with a body" },
		{ "GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, "
		    "HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk"
		    "\r\n\r\n", false, 200, "Upgrade: h2c is ignored" },
		{ "GET /healthz HTTP/2.0\r\nHost: h\r\n\r\n", false, 400,
		    "HTTP/2.0 request line" },
		{ "GET healthz HTTP/1.1\r\nHost: h\r\n\r\n", false, 400,
		    "a target not starting with /" },
		{ "GET /healthz HTTP/1.1\r\nHost: h\r\nX: a\x01" "b\r\n\r\n",
		    false, 400, "a control character in a header" },
		{ "GET /healthz HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n",
		    false, 400, "a space in a header name" },
		{ "GET /healthz HTTP/1.1\r\nHost: h\r\nX: a\r\n folded\r\n\r\n",
		    false, 400, "obsolete folding" },
	};
	char buf[512];
	struct upgrade u;
	const char *why;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t n = strlen(v[i].req);
		enum upgrade_verdict r;
		unsigned st;

		memcpy(buf, v[i].req, n);
		r = parse(buf, n, &u);
		st = r == UPGRADE_MORE ? 0 : upgrade_status(&u, r, v[i].ws_path,
		    &why);
		ok(st == v[i].status && (st == 101 || st == 200 ||
		    why[0] != '\0'), "%s: %u (got %u%s%s)", v[i].what,
		    v[i].status, st, st == 101 || st == 200 ? "" : ", ",
		    st == 101 || st == 200 ? "" : why);
	}
	{
		/* A header block that never ends: 431, not a wait. */
		char *big = xmalloc(UPGRADE_HEAD_MAX + 10);

		memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
		memset(big + 19, 'a', UPGRADE_HEAD_MAX + 10 - 19);
		{
			enum upgrade_verdict r = parse(big, UPGRADE_HEAD_MAX + 10,
			    &u);
			unsigned st = upgrade_status(&u, r, true, &why);

			ok(r == UPGRADE_HTTP && st == 431, "an endless header "
			    "block: 431 (got %u)", st);
		}
		free(big);
	}
#undef UPG
#undef KEY
#undef V13
}

int
main(void)
{

	rng_seed(0x51afd7ed558ccd5dULL);

	test_rfc_example();
	test_paths();
	test_subprotocols();
	test_random_keys();
	test_prefixes();
	test_spellings();
	test_not_ours();
	test_limits();
	test_pipelined();
	test_mutations();
	test_status();
	return done();
}
