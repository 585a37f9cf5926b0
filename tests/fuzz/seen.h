/*
 * seen.h — the frame parser's events as both fuzz targets check them:
 * its promises (chunks within the input, flags in order, control
 * payloads within 125 octets) abort when broken, and what it reported
 * is folded into a hash, so that two ways of feeding the same frames
 * can be compared.  Included by one target each: every name is static.
 */
#ifndef WSFLOW_FUZZ_SEEN_H
#define WSFLOW_FUZZ_SEEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ws.h"

/* What the parser reported, folded into a hash (FNV-1a) and counts. */
struct seen {
	bool	 in_message;
	size_t	 octets;
	uint64_t hash;
	unsigned stop_every;
	unsigned calls;
};

static void
mix(struct seen *s, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		s->hash = (s->hash ^ p[i]) * 0x100000001b3ULL;
}

static void
mark(struct seen *s, uint8_t what)
{
	uint8_t m[2] = { 0xff, what };

	mix(s, m, sizeof(m));
}

static int
on_data(void *arg, const uint8_t *p, size_t len, unsigned flags)
{
	struct seen *s = arg;

	if ((flags & WS_CHUNK_FIRST) != 0 && s->in_message)
		abort();			/* a message inside a message */
	if ((flags & WS_CHUNK_FIRST) == 0 && !s->in_message)
		abort();			/* a middle without a start */
	if ((flags & WS_CHUNK_MESSAGE_END) && !(flags & WS_CHUNK_FRAME_END))
		abort();
	if (flags & WS_CHUNK_FIRST)
		mark(s, 1);
	for (size_t i = 0; i < len; i++) {	/* ASan checks the range */
		uint8_t d[2] = { 0, p[i] };

		mix(s, d, sizeof(d));
	}
	if (flags & WS_CHUNK_FRAME_END)
		mark(s, 2);
	if (flags & WS_CHUNK_MESSAGE_END)
		mark(s, 3);
	s->in_message = !(flags & WS_CHUNK_MESSAGE_END);
	s->octets += len;
	return s->stop_every && ++s->calls % s->stop_every == 0 ? 1 : 0;
}

static int
on_control(void *arg, int opcode, const uint8_t *p, size_t len)
{
	struct seen *s = arg;

	if (len > WS_CONTROL_MAX || (opcode != WS_OP_PING &&
	    opcode != WS_OP_PONG && opcode != WS_OP_CLOSE))
		abort();
	mark(s, (uint8_t)(0x10 + opcode));
	mix(s, p, len);
	return 0;
}

static const struct ws_handler handler = { on_data, on_control };

#endif
