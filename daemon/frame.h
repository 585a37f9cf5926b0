/*
 * frame.h — client frames built by wsflow itself (RFC 6455 §5.2).
 *
 * lws 4.1.6 masks client payload a byte at a time; building the frame here
 * lets the mask run eight octets at a time (lws notes §3.4).  The header
 * goes into the LWS_PRE headroom just before the payload, and the whole
 * frame is sent with lws_write(..., LWS_WRITE_RAW).
 */
#ifndef WSFLOW_FRAME_H
#define WSFLOW_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_MAX	14	/* 2 + 8 length + 4 mask key */

#define FRAME_OP_CONTINUATION	0x0
#define FRAME_OP_TEXT		0x1
#define FRAME_OP_BINARY		0x2

/*
 * Write the header of a masked client frame so that it ends at payload;
 * returns its length (at most FRAME_HEADER_MAX octets are used before
 * payload).
 */
size_t	frame_header(uint8_t *payload, uint64_t len, int opcode, bool fin,
	    const uint8_t key[4]);
/* XOR payload with the key, in place, wide. */
void	frame_mask(uint8_t *payload, size_t len, const uint8_t key[4]);

#endif
