/*
 * fuzz_upgraded.c — libFuzzer target for a plain listener's stream after
 * a valid opening handshake: a complete request (one of a few a real
 * client sends) followed by fuzzed frames, as one byte stream, read the
 * way wsserver.c reads it.  fuzz_wsparse.c fuzzes the request itself
 * and, when its input is no upgrade, frames from offset 0; here every
 * input gets past the 101, so the frames behind it are what is fuzzed.
 *
 * The sequence is handshake_rx()'s: reads of the input's read size into
 * the head buffer (UPGRADE_HEAD_MAX) until upgrade_parse() has a
 * verdict, which must be a 101 ending exactly where the request ends;
 * then the octets read past the request go to a fresh parser, and the
 * rest of the stream follows in reads of another size, one parser all
 * along, going on after every "stop" (a pause) as feed() and
 * feed_held() do.  Checked: no crash, no over-read (every read an exact
 * copy), the parser's promises (as fuzz_wsparse.c), and the same events
 * as the frames parsed alone from their first octet: no octet of the
 * request reaches the parser, none of the frames is lost to it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upgrade.h"
#include "ws.h"
#include "seen.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Requests as clients send them: the tutorial's, lws's, a browser's. */
static const struct {
	const char	*text;
	const char	*path;
} requests[] = {
	{ "GET / HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\n"
	  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	  "Sec-WebSocket-Version: 13\r\n\r\n", "/" },
	{ "GET /stream HTTP/1.1\r\nhost: h\r\nupgrade: WebSocket\r\n"
	  "connection: keep-alive, Upgrade\r\nsec-websocket-version: 13\r\n"
	  "sec-websocket-key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
	  "Sec-WebSocket-Protocol: chat\r\n\r\n", "/stream" },
	{ "GET /frame HTTP/1.1\r\nHost: [::1]:9000\r\nConnection: Upgrade\r\n"
	  "Upgrade: websocket\r\nOrigin: http://localhost\r\n"
	  "Sec-WebSocket-Version: 13\r\n"
	  "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
	  "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", "/frame" },
	{ "GET /message?x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t\r\n"
	  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	  "Sec-WebSocket-Key: +/+/+/+/+/+/+/+/+/+/+w==\r\n"
	  "Sec-WebSocket-Version: 13\r\n\r\n", "/message?x=1" },
};

/*
 * One read's octets (buf is the reader's own: the parser unmasks in
 * place), going on after a "stop" as feed_held() does.  Returns false
 * once the stream is over (an error or a close).
 */
static bool
feed(struct ws_parser *p, uint8_t *buf, size_t len, struct seen *s)
{
	size_t off = 0;
	uint8_t after = 0;

	while (off < len) {
		size_t used = ws_parse(p, buf + off, len - off, &handler, s);

		if (used > len - off)
			abort();
		if (p->error != 0 || p->closed) {
			if (p->error != 0 && p->why == NULL)
				abort();
			if (ws_parse(p, &after, 1, &handler, s) != 0)
				abort();	/* nothing after the end */
			return false;
		}
		if (used == 0)
			abort();		/* no progress: a caller spins */
		off += used;
	}
	return true;
}

/* An exact copy of len octets: ASan sees any read past them. */
static uint8_t *
copy_of(const uint8_t *p, size_t len)
{
	uint8_t *c = malloc(len ? len : 1);

	memcpy(c, p, len);
	return c;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_parser pa, pb;
	struct upgrade u;
	enum upgrade_verdict v;
	struct seen alone = { 0 }, behind = { 0 };
	const char *req, *why;
	char reply[UPGRADE_REPLY_MAX];
	size_t which, reqlen, total, head_len = 0, off = 0, head_read, piece;
	uint8_t *stream, *c;
	char *head;

	if (size < 3)
		return 0;
	which = data[0] % (sizeof(requests) / sizeof(requests[0]));
	req = requests[which].text;
	head_read = 1 + data[1];		/* the handshake's reads */
	piece = 1 + data[2] % 64;		/* the frames' reads */
	behind.stop_every = (unsigned)(data[0] >> 4) % 4;
	data += 3;
	size -= 3;

	/* The frames alone, whole, from their first octet: the reference. */
	ws_parser_init(&pa);
	c = copy_of(data, size);
	(void)feed(&pa, c, size, &alone);
	free(c);

	reqlen = strlen(req);
	total = reqlen + size;
	stream = malloc(total);
	memcpy(stream, req, reqlen);
	memcpy(stream + reqlen, data, size);

	/* handshake_rx(): read into the head until there is a verdict. */
	head = malloc(UPGRADE_HEAD_MAX);
	do {
		size_t n = head_read;

		if (n > UPGRADE_HEAD_MAX - head_len)
			n = UPGRADE_HEAD_MAX - head_len;
		if (n > total - off)
			n = total - off;
		memcpy(head + head_len, stream + off, n);
		head_len += n;
		off += n;
		c = copy_of((const uint8_t *)head, head_len);
		v = upgrade_parse((const char *)c, head_len, &u);
		free(c);
	} while (v == UPGRADE_MORE && off < total);
	if (v != UPGRADE_OURS || u.head_len != reqlen ||
	    upgrade_status(&u, v, true, &why) != 101 ||
	    upgrade_reply(&u, "", reply, sizeof(reply)) == 0 ||
	    strcmp(u.path, requests[which].path) != 0)
		abort();		/* a client's valid upgrade refused */

	/* The octets read past the request, then the rest as it comes. */
	ws_parser_init(&pb);
	c = copy_of((const uint8_t *)head + u.head_len, head_len - u.head_len);
	if (feed(&pb, c, head_len - u.head_len, &behind)) {
		while (off < total) {
			size_t n = total - off < piece ? total - off : piece;
			uint8_t *r = copy_of(stream + off, n);
			bool more = feed(&pb, r, n, &behind);

			free(r);
			off += n;
			if (!more)
				break;
		}
	}
	free(c);
	free(head);
	free(stream);

	if (pa.error != pb.error || pa.closed != pb.closed)
		abort();		/* behind a handshake, another end */
	/* Invalid UTF-8 fails as early as the cut lets it see: then only the
	 * code must agree. */
	if (pa.error == 0 && (alone.octets != behind.octets ||
	    alone.hash != behind.hash))
		abort();
	return 0;
}
