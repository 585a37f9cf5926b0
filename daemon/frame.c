/*
 * frame.c — masked client frame headers and a word-wide mask.
 */
#include <string.h>

#include "frame.h"

size_t
frame_header(uint8_t *payload, uint64_t len, int opcode, bool fin,
    const uint8_t key[4])
{
	uint8_t h[FRAME_HEADER_MAX];
	size_t n = 0;

	h[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
	if (len < 126)
		h[n++] = (uint8_t)(0x80 | len);
	else if (len <= 0xffff) {
		h[n++] = 0x80 | 126;
		h[n++] = (uint8_t)(len >> 8);
		h[n++] = (uint8_t)len;
	} else {
		h[n++] = 0x80 | 127;
		for (int shift = 56; shift >= 0; shift -= 8)
			h[n++] = (uint8_t)(len >> shift);
	}
	memcpy(h + n, key, 4);
	n += 4;
	memcpy(payload - n, h, n);
	return n;
}

/*
 * -O3 (Makefile) and an AVX2 clone: 32 octets a step where it can.  The
 * fuzz build (clang 14) cannot call a clone from another file: none.
 */
#ifndef WSFLOW_NO_CLONES
__attribute__((target_clones("avx2", "default")))
#endif
void
frame_mask(uint8_t *p, size_t len, const uint8_t key[4])
{
	uint64_t k8, w;
	uint32_t k4;
	size_t i = 0;

	memcpy(&k4, key, 4);
	k8 = (uint64_t)k4 << 32 | k4;
	/* memcpy keeps it legal for any alignment; compilers make it a load. */
	for (; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		w ^= k8;
		memcpy(p + i, &w, 8);
	}
	for (; i < len; i++)
		p[i] ^= key[i & 3];
}
