/*
 * upgrade.c — a client's opening handshake on a plain listener, read by
 * wsflowd itself (RFC 6455 §4.2.1), and the 101 that answers it (§4.2.2).
 *
 * Strict on purpose: whatever is not plainly a version-13 upgrade with a
 * good key, no subprotocol and no line folding goes to lws, so the odd
 * cases keep the answers they always had.
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

enum upgrade_verdict
upgrade_parse(const char *buf, size_t len, struct upgrade *u)
{
	const char *end, *line, *eol;
	size_t scan = len < UPGRADE_HEAD_MAX ? len : UPGRADE_HEAD_MAX;
	bool host = false, upgrade = false, connection = false,
	    version = false, key = false;

	memset(u, 0, sizeof(*u));
	if ((end = memmem(buf, scan, "\r\n\r\n", 4)) == NULL) {
		/* Bare LF lines (RFC 7230 §3.5) are lws's to judge. */
		if (len >= UPGRADE_HEAD_MAX || memchr(buf, '\0', len) != NULL ||
		    memmem(buf, scan, "\n\n", 2) != NULL)
			return UPGRADE_LWS;
		return UPGRADE_MORE;
	}
	u->head_len = (size_t)(end - buf) + 4;
	if (memchr(buf, '\0', u->head_len) != NULL)
		return UPGRADE_LWS;

	/* GET <path> HTTP/1.1 */
	eol = memmem(buf, u->head_len, "\r\n", 2);
	if (eol - buf < 14 || strncmp(buf, "GET /", 5) != 0 ||
	    strncmp(eol - 9, " HTTP/1.1", 9) != 0)
		return UPGRADE_LWS;
	size_t plen = (size_t)(eol - 9 - (buf + 4));
	if (plen >= sizeof(u->path) || memchr(buf + 4, ' ', plen) != NULL)
		return UPGRADE_LWS;
	memcpy(u->path, buf + 4, plen);
	u->path[plen] = '\0';

	for (line = eol + 2; line < end + 2; line = eol + 2) {
		const char *colon, *v;
		size_t nlen, vlen;

		eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		if (*line == ' ' || *line == '\t')
			return UPGRADE_LWS;		/* obsolete folding */
		if ((colon = memchr(line, ':', (size_t)(eol - line))) == NULL)
			return UPGRADE_LWS;
		nlen = (size_t)(colon - line);
		for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		vlen = (size_t)(eol - v);
		while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		for (size_t i = 0; i < (size_t)(eol - line); i++)
			if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
				return UPGRADE_LWS;
		if (name_is(line, nlen, "Host"))
			host = vlen > 0;
		else if (name_is(line, nlen, "Upgrade"))
			upgrade = has_token(v, vlen, "websocket");
		else if (name_is(line, nlen, "Connection"))
			connection = has_token(v, vlen, "upgrade");
		else if (name_is(line, nlen, "Sec-WebSocket-Version")) {
			if (version)
				return UPGRADE_LWS;
			version = vlen == 2 && strncmp(v, "13", 2) == 0;
			if (!version)
				return UPGRADE_LWS;
		} else if (name_is(line, nlen, "Sec-WebSocket-Key")) {
			if (key || !key_valid(v, vlen))
				return UPGRADE_LWS;
			memcpy(u->key, v, vlen);
			u->key[vlen] = '\0';
			key = true;
		} else if (name_is(line, nlen, "Sec-WebSocket-Protocol"))
			return UPGRADE_LWS;	/* lws refuses unknown ones */
	}
	return host && upgrade && connection && version && key ?
	    UPGRADE_OURS : UPGRADE_LWS;
}

size_t
upgrade_reply(const struct upgrade *u, char *out, size_t outlen)
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
	    "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
	return n < 0 || (size_t)n >= outlen ? 0 : (size_t)n;
}
