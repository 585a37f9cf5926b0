/*
 * fuzz_wsparse.c — libFuzzer target for what a client sends a plain
 * listener: the opening handshake (upgrade.c), then frames (wsparse.c),
 * cut into pieces the way reads cut them.  No crash, no over-read, and
 * the parser's promises hold: chunks within the input, flags in order,
 * control payloads within 125 octets, nothing parsed after an error or
 * a close.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upgrade.h"
#include "wsparse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct seen {
	bool	 in_message;
	size_t	 octets;
	unsigned stop_every;	/* say "stop" now and then, as a pause does */
	unsigned calls;
};

static int
on_data(void *arg, const uint8_t *p, size_t len, unsigned flags)
{
	struct seen *s = arg;
	volatile uint8_t sink = 0;

	for (size_t i = 0; i < len; i++)	/* ASan checks the range */
		sink ^= p[i];
	(void)sink;
	if ((flags & WS_CHUNK_FIRST) != 0 && s->in_message)
		abort();			/* a message inside a message */
	if ((flags & WS_CHUNK_FIRST) == 0 && !s->in_message)
		abort();			/* a middle without a start */
	if ((flags & WS_CHUNK_MESSAGE_END) && !(flags & WS_CHUNK_FRAME_END))
		abort();
	s->in_message = !(flags & WS_CHUNK_MESSAGE_END);
	s->octets += len;
	return s->stop_every && ++s->calls % s->stop_every == 0 ? 1 : 0;
}

static int
on_control(void *arg, int opcode, const uint8_t *p, size_t len)
{
	(void)arg;
	(void)p;
	if (len > WS_CONTROL_MAX || (opcode != WS_OP_PING &&
	    opcode != WS_OP_PONG && opcode != WS_OP_CLOSE))
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct ws_handler h = { on_data, on_control };
	struct ws_parser p;
	struct upgrade u;
	struct seen s = { 0 };
	char reply[UPGRADE_REPLY_MAX];
	size_t off = 0, piece;

	if (size < 2)
		return 0;
	piece = 1 + data[0] % 64;	/* read sizes */
	s.stop_every = data[1] % 4;
	data += 2;
	size -= 2;

	/* The handshake, on an exact copy (ASan sees an over-read). */
	char *head = malloc(size ? size : 1);
	memcpy(head, data, size);
	if (upgrade_parse(head, size, &u) == UPGRADE_OURS) {
		if (u.head_len > size || upgrade_reply(&u, reply,
		    sizeof(reply)) == 0)
			abort();
	}
	free(head);

	ws_parser_init(&p);
	while (off < size) {
		size_t n = size - off < piece ? size - off : piece;
		uint8_t *copy = malloc(n);
		size_t used;

		memcpy(copy, data + off, n);
		used = ws_parse(&p, copy, n, &h, &s);
		free(copy);
		if (used > n)
			abort();
		if (p.error != 0 || p.closed) {
			if (p.error != 0 && p.why == NULL)
				abort();
			if (ws_parse(&p, (uint8_t *)reply, 1, &h, &s) != 0)
				abort();	/* nothing after the end */
			break;
		}
		off += used;
	}
	if (s.octets > size)
		abort();
	return 0;
}
