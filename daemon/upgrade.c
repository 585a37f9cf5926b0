/*
 * upgrade.c — a client's first request on a listener, read by wsflowd
 * itself: the opening handshake (RFC 6455 §4.2.1) and the 101 that
 * answers it (§4.2.2), or a plain GET or HEAD, or something to refuse.
 *
 * Strict on purpose: only a version-13 upgrade with a good key, no body
 * and no line folding is upgraded.  Everything else is answered with an
 * HTTP status and the connection closed, so a request body is never
 * read, and can never be taken for a second request.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "upgrade.h"

#define WS_GUID	"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Is token (case-insensitive) one of value's comma-separated items? */
static bool
has_token(const char *value, size_t vlen, const char *token)
{
	size_t tlen = strlen(token), i = 0;

	while (i < vlen) {
		size_t start, end;

		while (i < vlen && (value[i] == ' ' || value[i] == '\t' ||
		    value[i] == ','))
			i++;
		start = i;
		while (i < vlen && value[i] != ',')
			i++;
		end = i;
		while (end > start && (value[end - 1] == ' ' ||
		    value[end - 1] == '\t'))
			end--;
		if (end - start == tlen &&
		    strncasecmp(value + start, token, tlen) == 0)
			return true;
	}
	return false;
}

static bool
is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* 16 octets in base64: 22 characters and "==" (§4.1, item 7). */
static bool
key_valid(const char *v, size_t len)
{
	if (len != 24 || v[22] != '=' || v[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++)
		if (!is_b64(v[i]))
			return false;
	return true;
}

static bool
name_is(const char *name, size_t nlen, const char *want)
{
	return nlen == strlen(want) && strncasecmp(name, want, nlen) == 0;
}

/* RFC 7230 §3.2.6 token: what a method or a header name is made of. */
static bool
is_token(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || (c != '\0' &&
		    strchr("!#$%&'*+-.^_`|~", c) != NULL)))
			return false;
	}
	return true;
}

static void
refuse(struct upgrade *u, unsigned status, const char *why)
{
	if (u->refuse == 0) {
		u->refuse = status;
		u->why = why;
	}
}

/* "METHOD /path HTTP/1.x"; eol points at its CR. */
static void
request_line(struct upgrade *u, const char *buf, const char *eol)
{
	const char *sp, *target, *proto;
	size_t mlen, plen, len = (size_t)(eol - buf);

	if ((sp = memchr(buf, ' ', len)) == NULL || sp == buf ||
	    !is_token(buf, (size_t)(sp - buf))) {
		refuse(u, 400, "malformed request line");
		return;
	}
	mlen = (size_t)(sp - buf);
	if (mlen == 3 && memcmp(buf, "GET", 3) == 0)
		u->method = METHOD_GET;
	else if (mlen == 4 && memcmp(buf, "HEAD", 4) == 0)
		u->method = METHOD_HEAD;
	else
		u->method = METHOD_OTHER;	/* methods are case-sensitive */
	target = sp + 1;
	if ((proto = memchr(target, ' ', (size_t)(eol - target))) == NULL ||
	    *target != '/') {
		refuse(u, 400, "malformed request line");
		return;
	}
	if ((size_t)(eol - proto) != 9 || memcmp(proto, " HTTP/1.", 8) != 0 ||
	    (proto[8] != '0' && proto[8] != '1')) {
		refuse(u, 400, "not an HTTP/1.x request");
		return;
	}
	u->http10 = proto[8] == '0';
	plen = (size_t)(proto - target);
	if (plen >= sizeof(u->path)) {
		refuse(u, 414, "request target too long");
		return;
	}
	memcpy(u->path, target, plen);
	u->path[plen] = '\0';
}

/* Content-Length: digits only; several must agree (RFC 7230 §3.3.2). */
static void
content_length(struct upgrade *u, const char *v, size_t vlen,
    long long *seen)
{
	long long n = 0;

	if (vlen == 0 || vlen > 18) {
		refuse(u, 400, "bad Content-Length");
		return;
	}
	for (size_t i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9') {
			refuse(u, 400, "bad Content-Length");
			return;
		}
		n = n * 10 + (v[i] - '0');
	}
	if (*seen >= 0 && *seen != n)
		refuse(u, 400, "bad Content-Length");
	*seen = n;
	if (n > 0)
		u->body = true;
}

static void
header(struct upgrade *u, const char *line, const char *eol,
    long long *length, bool *key_seen)
{
	const char *colon, *v;
	size_t nlen, vlen;

	if (*line == ' ' || *line == '\t') {
		refuse(u, 400, "obsolete header folding");
		return;
	}
	if ((colon = memchr(line, ':', (size_t)(eol - line))) == NULL ||
	    colon == line || !is_token(line, (size_t)(colon - line))) {
		refuse(u, 400, "malformed header line");
		return;
	}
	nlen = (size_t)(colon - line);
	for (const char *p = colon + 1; p < eol; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) {
			refuse(u, 400, "control character in a header");
			return;
		}
	for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
		;
	vlen = (size_t)(eol - v);
	while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;

	if (name_is(line, nlen, "Host")) {
		if (u->host)
			refuse(u, 400, "more than one Host header");
		u->host = vlen > 0;
	} else if (name_is(line, nlen, "Upgrade"))
		u->websocket |= has_token(v, vlen, "websocket");
	else if (name_is(line, nlen, "Connection"))
		u->connection_upgrade |= has_token(v, vlen, "upgrade");
	else if (name_is(line, nlen, "Sec-WebSocket-Version")) {
		/* Once, and exactly "13" (§4.2.1 item 6); else 426. */
		u->version = u->version == -1 && vlen == 2 &&
		    memcmp(v, "13", 2) == 0 ? 13 : 0;
	} else if (name_is(line, nlen, "Sec-WebSocket-Key")) {
		u->key_valid = !*key_seen && key_valid(v, vlen);
		*key_seen = true;
		if (u->key_valid) {
			memcpy(u->key, v, vlen);
			u->key[vlen] = '\0';
		}
	} else if (name_is(line, nlen, "Origin")) {
		if (vlen >= sizeof(u->origin))
			vlen = sizeof(u->origin) - 1;
		memcpy(u->origin, v, vlen);
		u->origin[vlen] = '\0';
	} else if (name_is(line, nlen, "Content-Length"))
		content_length(u, v, vlen, length);
	else if (name_is(line, nlen, "Transfer-Encoding"))
		u->body = true;		/* chunked or not: never read */
	else if (name_is(line, nlen, "Sec-WebSocket-Protocol")) {
		/* Offered; selected only from server.subprotocols.  Several
		 * lines are one list (RFC 7230 §3.2.2); past 255 octets the
		 * rest is not looked at. */
		size_t have = strlen(u->protocols);

		if (have > 0 && have + 1 < sizeof(u->protocols))
			u->protocols[have++] = ',';
		if (vlen > sizeof(u->protocols) - 1 - have)
			vlen = sizeof(u->protocols) - 1 - have;
		memcpy(u->protocols + have, v, vlen);
		u->protocols[have + vlen] = '\0';
	}
}

void
upgrade_subprotocol(const struct upgrade *u, const char *allowed,
    char *out, size_t outlen)
{
	const char *p = u->protocols;

	out[0] = '\0';
	while (allowed != NULL && *p != '\0') {
		size_t n;

		p += strspn(p, " \t,");
		n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		for (const char *l = allowed; n > 0 && *l != '\0';
		    l += strcspn(l, "\n"), l += *l == '\n')
			if (strcspn(l, "\n") == n && memcmp(l, p, n) == 0) {
				if (n < outlen) {
					memcpy(out, p, n);
					out[n] = '\0';
				}
				return;
			}
		p += strcspn(p, ",");
	}
}

enum upgrade_verdict
upgrade_parse(const char *buf, size_t len, struct upgrade *u)
{
	const char *end, *line, *eol;
	size_t scan = len < UPGRADE_HEAD_MAX ? len : UPGRADE_HEAD_MAX;
	long long length = -1;
	bool key_seen = false;

	memset(u, 0, sizeof(*u));
	u->version = -1;
	if ((end = memmem(buf, scan, "\r\n\r\n", 4)) == NULL) {
		if (len >= UPGRADE_HEAD_MAX)
			refuse(u, 431, "request header too large");
		else if (memchr(buf, '\0', len) != NULL)
			refuse(u, 400, "not an HTTP request");
		else if (memmem(buf, scan, "\n\n", 2) != NULL)
			refuse(u, 400, "lines must end with CR LF");
		else
			return UPGRADE_MORE;
		return UPGRADE_HTTP;
	}
	u->head_len = (size_t)(end - buf) + 4;
	if (memchr(buf, '\0', u->head_len) != NULL) {
		refuse(u, 400, "not an HTTP request");
		return UPGRADE_HTTP;
	}
	eol = memmem(buf, u->head_len, "\r\n", 2);
	request_line(u, buf, eol);
	for (line = eol + 2; line < end + 2 && u->refuse == 0;
	    line = eol + 2) {
		eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		if (memchr(line, '\n', (size_t)(eol - line)) != NULL)
			refuse(u, 400, "lines must end with CR LF");
		else
			header(u, line, eol, &length, &key_seen);
	}
	return u->refuse == 0 && u->method == METHOD_GET && !u->http10 &&
	    u->host && u->websocket && u->connection_upgrade &&
	    u->version == 13 && u->key_valid && !u->body ?
	    UPGRADE_OURS : UPGRADE_HTTP;
}

unsigned
upgrade_status(const struct upgrade *u, enum upgrade_verdict v,
    bool ws_path, const char **why)
{
	*why = "";
	if (u->refuse != 0) {
		*why = u->why;
		return u->refuse;
	}
	if (u->method == METHOD_OTHER) {
		*why = "only GET and HEAD are served";
		return 405;
	}
	if (u->body) {
		*why = "request bodies are not accepted";
		return 400;
	}
	if (v == UPGRADE_OURS || u->websocket) {
		if (!ws_path) {
			*why = "no WebSocket endpoint at this path";
			return 404;
		}
		if (v == UPGRADE_OURS)
			return 101;
		if (u->method != METHOD_GET || u->http10)
			*why = "an upgrade must be an HTTP/1.1 GET";
		else if (!u->host)
			*why = "no Host header";
		else if (!u->connection_upgrade)
			*why = "no Connection: Upgrade";
		else if (u->version != 13) {
			*why = "only WebSocket version 13 is spoken";
			return 426;
		} else
			*why = "bad or missing Sec-WebSocket-Key";
		return 400;
	}
	if (!u->http10 && !u->host) {
		*why = "no Host header";
		return 400;
	}
	if (ws_path) {
		*why = "a WebSocket endpoint: upgrade required";
		return 426;
	}
	return 200;
}

size_t
upgrade_reply(const struct upgrade *u, const char *protocol, char *out,
    size_t outlen)
{
	char in[sizeof(u->key) + sizeof(WS_GUID)];
	unsigned char sha[EVP_MAX_MD_SIZE];
	unsigned char accept[32];
	unsigned shalen;
	int n;

	n = snprintf(in, sizeof(in), "%s%s", u->key, WS_GUID);
	if (n < 0 || (size_t)n >= sizeof(in) ||
	    EVP_Digest(in, (size_t)n, sha, &shalen, EVP_sha1(), NULL) != 1)
		return 0;
	EVP_EncodeBlock(accept, sha, (int)shalen);
	n = snprintf(out, outlen, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n", accept,
	    *protocol ? "Sec-WebSocket-Protocol: " : "", protocol,
	    *protocol ? "\r\n" : "");
	return n < 0 || (size_t)n >= outlen ? 0 : (size_t)n;
}
