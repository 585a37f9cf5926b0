/*
 * ws.h — RFC 6455 framing, both directions, as pure logic: opcodes and
 * close codes, frame headers, the mask, and the server's parser.
 *
 * lws 4.1.6 unmasks what a server receives one octet at a time, about a
 * fifth of wsflowd's CPU per GB (docs/lws.md §4; README "Performance").  On
 * plain listeners wsflowd reads the socket itself and parses here: the
 * payload is unmasked eight or 32 octets at a time, in place, and handed
 * straight to the batcher.  No I/O and no allocation: octets in, events
 * out (tests/unit/test_wsparse.c, test_frame.c).
 */
#ifndef WSFLOW_WS_H
#define WSFLOW_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "simd.h"

#define WS_OP_CONTINUATION	0x0
#define WS_OP_TEXT		0x1
#define WS_OP_BINARY		0x2
#define WS_OP_CLOSE		0x8
#define WS_OP_PING		0x9
#define WS_OP_PONG		0xa

#define WS_CONTROL_MAX		125	/* RFC 6455 §5.5 */
#define WS_SERVER_HEADER_MAX	10	/* unmasked: 2 + 8 length */
#define WS_HEADER_MAX		14	/* masked: + 4 key octets */

/* Close status codes wsflowd sends (RFC 6455 §7.4.1). */
#define WS_CLOSE_NORMAL		1000
#define WS_CLOSE_GOING_AWAY	1001
#define WS_CLOSE_PROTOCOL	1002
#define WS_CLOSE_INVALID_DATA	1007
#define WS_CLOSE_POLICY		1008
#define WS_CLOSE_INTERNAL	1011

/* Flags of a data chunk. */
#define WS_CHUNK_FIRST		0x1	/* the message's first octets */
#define WS_CHUNK_FRAME_END	0x2	/* its frame's last octets */
#define WS_CHUNK_MESSAGE_END	0x4	/* its message's last octets */

/* Incremental UTF-8 check (RFC 3629: no overlongs, surrogates, > U+10FFFF). */
struct utf8_check {
	uint8_t		 need;		/* continuation octets still due */
	uint8_t		 lo, hi;	/* range of the next one */
};

void	utf8_reset(struct utf8_check *);
bool	utf8_feed(struct utf8_check *, const uint8_t *, size_t);
bool	utf8_complete(const struct utf8_check *);

struct ws_handler {
	/*
	 * Payload of a data frame, unmasked, with WS_CHUNK_* flags; an
	 * empty frame gives a chunk of length 0.  Return 0 to go on, 1 to
	 * stop parsing after this chunk (the caller keeps the rest), -1 to
	 * fail the connection with 1011.
	 */
	int	(*data)(void *arg, const uint8_t *, size_t, unsigned flags);
	/*
	 * A whole ping, pong or (checked) close frame; parsing stops
	 * after a close.  Return values as for data.
	 */
	int	(*control)(void *arg, int opcode, const uint8_t *, size_t);
};

struct ws_parser {
	uint8_t		 hdr[14];	/* header octets so far */
	unsigned	 hlen, hneed;
	bool		 in_frame;	/* header done, payload follows */
	int		 opcode;
	bool		 fin;
	uint8_t		 key[4];
	unsigned	 phase;		/* mask key index of the next octet */
	uint64_t	 left;		/* payload octets still to come */
	bool		 in_message;
	bool		 first;		/* no chunk of the message given yet */
	bool		 text;
	struct utf8_check utf8;
	uint8_t		 ctl[WS_CONTROL_MAX];
	unsigned	 ctl_len;
	bool		 closed;	/* a close frame was parsed */
	uint16_t	 error;		/* close code owed for a violation */
	const char	*why;		/* ... and what it was */
};

void	ws_parser_init(struct ws_parser *);

/*
 * Parse len octets at buf, unmasking payload in place.  Returns the
 * octets consumed: all of them, or fewer when a handler said stop, after
 * a close frame, or at a violation (p->error and p->why set; parse no
 * more).  A handler's -1 sets error 1011.
 */
size_t	ws_parse(struct ws_parser *, uint8_t *buf, size_t len,
	    const struct ws_handler *, void *arg);

/* RFC 6455 §7.4: may a peer send this code in a close frame? */
bool	ws_close_code_valid(unsigned code);

/*
 * A frame header into out (WS_HEADER_MAX octets): masked with key, or
 * unmasked (a server's) when key is NULL; returns its length.
 */
size_t	ws_header(uint8_t *out, int opcode, bool fin, uint64_t len,
	    const uint8_t *key);
/* A masked client header written to end right before payload. */
size_t	ws_client_header(uint8_t *payload, uint64_t len, int opcode,
	    bool fin, const uint8_t key[4]);
/* XOR payload with the key, in place, wide. */
void	ws_mask(uint8_t *payload, size_t len, const uint8_t key[4]);
/* The variants ws_mask picks from (simd.h), named for the unit tests. */
void	ws_mask_generic(uint8_t *payload, size_t len, const uint8_t key[4]);
#if WSFLOW_AVX2
void	ws_mask_avx2(uint8_t *payload, size_t len, const uint8_t key[4]);
#endif
/* "avx2" or "generic": the one ws_mask runs. */
const char *ws_mask_variant(void);

#endif
