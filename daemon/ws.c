/*
 * ws.c — RFC 6455 framing, both directions: frame headers as either side
 * writes them, the mask eight or 32 octets at a time, and frames as a
 * server receives them (header, unmask, UTF-8 of text, the rules of §5
 * on fragments and control frames).  docs/wire.md §3 says what it
 * holds a client to.
 */
#include <string.h>

#include "ws.h"

void
utf8_reset(struct utf8_check *u)
{
	memset(u, 0, sizeof(*u));
}

/*
 * RFC 3629 §4: the second octet's range depends on the first (no
 * overlongs, no surrogates, nothing past U+10FFFF); later ones are 80..BF.
 */
bool
utf8_feed(struct utf8_check *u, const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = p[i];

		if (u->need > 0) {
			if (c < u->lo || c > u->hi)
				return false;
			u->need--;
			u->lo = 0x80;
			u->hi = 0xbf;
			i++;
			continue;
		}
		/* ASCII eight at a time: most text is. */
		if (c < 0x80) {
			uint64_t w;

			while (i + 8 <= len) {
				memcpy(&w, p + i, 8);
				if (w & 0x8080808080808080ULL)
					break;
				i += 8;
			}
			while (i < len && p[i] < 0x80)
				i++;
			continue;
		}
		u->lo = 0x80;
		u->hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf)
			u->need = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			u->need = 2;
			if (c == 0xe0)
				u->lo = 0xa0;
			else if (c == 0xed)
				u->hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			u->need = 3;
			if (c == 0xf0)
				u->lo = 0x90;
			else if (c == 0xf4)
				u->hi = 0x8f;
		} else
			return false;
		i++;
	}
	return true;
}

bool
utf8_complete(const struct utf8_check *u)
{
	return u->need == 0;
}

void
ws_parser_init(struct ws_parser *p)
{
	memset(p, 0, sizeof(*p));
	p->hneed = 2;
}

bool
ws_close_code_valid(unsigned code)
{
	/* 1004-1006 and 1015 are never sent; 1012-1014 are IANA's since. */
	return (code >= 1000 && code <= 1003) ||
	    (code >= 1007 && code <= 1014) ||
	    (code >= 3000 && code <= 4999);
}

/* A frame header: FIN, opcode, the shortest length, the mask key. */
size_t
ws_header(uint8_t *out, int opcode, bool fin, uint64_t len,
    const uint8_t *key)
{
	uint8_t mask = key != NULL ? 0x80 : 0;
	size_t n = 0;

	out[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
	if (len < 126)
		out[n++] = (uint8_t)(mask | len);
	else if (len <= 0xffff) {
		out[n++] = mask | 126;
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	} else {
		out[n++] = mask | 127;
		for (int shift = 56; shift >= 0; shift -= 8)
			out[n++] = (uint8_t)(len >> shift);
	}
	if (key != NULL) {
		memcpy(out + n, key, 4);
		n += 4;
	}
	return n;
}

/* A masked client header written so that it ends at payload. */
size_t
ws_client_header(uint8_t *payload, uint64_t len, int opcode, bool fin,
    const uint8_t key[4])
{
	uint8_t h[WS_HEADER_MAX];
	size_t n = ws_header(h, opcode, fin, len, key);

	memcpy(payload - n, h, n);
	return n;
}

/*
 * -O3 (Makefile): the loop is written once and compiled twice, for the
 * baseline x86-64 (ws_mask_generic, what a CPU without AVX2 runs) and for
 * AVX2 (ws_mask_avx2, 32 octets a step where it can).  ws_mask calls the
 * one picked at start: AVX2 where the CPU has it, unless the environment
 * has WSFLOW_GENERIC=1 (so that the tests run the baseline code too).
 * WSFLOW_NO_CLONES (the fuzz build) builds the baseline one only.
 */
static inline __attribute__((always_inline)) void
mask_loop(uint8_t *p, size_t len, const uint8_t key[4])
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

void
ws_mask_generic(uint8_t *p, size_t len, const uint8_t key[4])
{
	mask_loop(p, len, key);
}

#if WSFLOW_AVX2
__attribute__((target("avx2")))
void
ws_mask_avx2(uint8_t *p, size_t len, const uint8_t key[4])
{
	mask_loop(p, len, key);
}
#endif

static void	(*mask_fn)(uint8_t *, size_t, const uint8_t *) =
		    ws_mask_generic;

/* Before main and before any thread: the pointer is only read after. */
__attribute__((constructor))
static void
mask_pick(void)
{
#if WSFLOW_AVX2
	if (wsflow_use_avx2())
		mask_fn = ws_mask_avx2;
#endif
}

const char *
ws_mask_variant(void)
{
	return mask_fn == ws_mask_generic ? "generic" : "avx2";
}

void
ws_mask(uint8_t *p, size_t len, const uint8_t key[4])
{
	mask_fn(p, len, key);
}

static size_t
fail(struct ws_parser *p, uint16_t code, const char *why, size_t consumed)
{
	p->error = code;
	p->why = why;
	return consumed;
}

/* The first two octets say how long the header is, and most violations. */
static const char *
check_start(struct ws_parser *p)
{
	uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
	int op = b0 & 0x0f;
	unsigned len7 = b1 & 0x7f;

	if (b0 & 0x70)
		return "reserved bits set (no extension was agreed)";
	if (!(b1 & 0x80))
		return "unmasked client frame";
	switch (op) {
	case WS_OP_CONTINUATION:
		if (!p->in_message)
			return "continuation frame outside a message";
		break;
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		if (p->in_message)
			return "new data frame inside a fragmented message";
		break;
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		if (!(b0 & 0x80))
			return "fragmented control frame";
		if (len7 > WS_CONTROL_MAX)
			return "control frame longer than 125 octets";
		break;
	default:
		return "reserved opcode";
	}
	p->hneed = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
	return NULL;
}

static const char *
header_done(struct ws_parser *p)
{
	const uint8_t *h = p->hdr;
	unsigned len7 = h[1] & 0x7f, at = 2;
	uint64_t len = len7;

	if (len7 == 126) {
		len = (uint64_t)h[2] << 8 | h[3];
		at = 4;
	} else if (len7 == 127) {
		len = 0;
		for (unsigned i = 0; i < 8; i++)
			len = len << 8 | h[2 + i];
		if (len >> 63)
			return "frame length with the most significant bit set";
		at = 10;
	}
	memcpy(p->key, h + at, 4);
	p->phase = 0;
	p->opcode = h[0] & 0x0f;
	p->fin = (h[0] & 0x80) != 0;
	p->left = len;
	p->in_frame = true;
	p->hlen = 0;
	p->hneed = 2;
	p->ctl_len = 0;
	if (p->opcode == WS_OP_TEXT || p->opcode == WS_OP_BINARY) {
		p->in_message = true;
		p->first = true;
		p->text = p->opcode == WS_OP_TEXT;
		utf8_reset(&p->utf8);
	}
	return NULL;
}

/* Unmask in place, starting at the key's octet p->phase. */
static void
unmask(struct ws_parser *p, uint8_t *buf, size_t len)
{
	uint8_t key[4];

	for (unsigned i = 0; i < 4; i++)
		key[i] = p->key[(p->phase + i) & 3];
	ws_mask(buf, len, key);
	p->phase = (unsigned)((p->phase + len) & 3);
}

/* A whole control frame: check a close, then tell the handler. */
static int
control_done(struct ws_parser *p, const struct ws_handler *h, void *arg)
{
	if (p->opcode == WS_OP_CLOSE) {
		struct utf8_check u;

		if (p->ctl_len == 1) {
			p->error = WS_CLOSE_PROTOCOL;
			p->why = "close frame with a 1-octet payload";
			return -1;
		}
		if (p->ctl_len >= 2 &&
		    !ws_close_code_valid((unsigned)p->ctl[0] << 8 | p->ctl[1])) {
			p->error = WS_CLOSE_PROTOCOL;
			p->why = "invalid close code";
			return -1;
		}
		utf8_reset(&u);
		if (p->ctl_len > 2 && (!utf8_feed(&u, p->ctl + 2,
		    p->ctl_len - 2) || !utf8_complete(&u))) {
			p->error = WS_CLOSE_INVALID_DATA;
			p->why = "close reason is not UTF-8";
			return -1;
		}
		p->closed = true;
	}
	return h->control(arg, p->opcode, p->ctl, p->ctl_len);
}

/* Payload of a data frame: n octets at buf (n may be 0). */
static int
data_chunk(struct ws_parser *p, uint8_t *buf, size_t n,
    const struct ws_handler *h, void *arg)
{
	unsigned flags = 0;

	unmask(p, buf, n);
	p->left -= n;
	if (p->text && !utf8_feed(&p->utf8, buf, n)) {
		p->error = WS_CLOSE_INVALID_DATA;
		p->why = "text message is not UTF-8";
		return -1;
	}
	if (p->first)
		flags |= WS_CHUNK_FIRST;
	p->first = false;
	if (p->left == 0) {
		flags |= WS_CHUNK_FRAME_END;
		p->in_frame = false;
		if (p->fin) {
			if (p->text && !utf8_complete(&p->utf8)) {
				p->error = WS_CLOSE_INVALID_DATA;
				p->why = "text message ends inside a character";
				return -1;
			}
			flags |= WS_CHUNK_MESSAGE_END;
			p->in_message = false;
		}
	}
	return h->data(arg, buf, n, flags);
}

size_t
ws_parse(struct ws_parser *p, uint8_t *buf, size_t len,
    const struct ws_handler *h, void *arg)
{
	size_t at = 0;
	const char *why;
	int rc;

	if (p->error != 0 || p->closed)
		return 0;
	while (at < len || (p->in_frame && p->left == 0)) {
		if (!p->in_frame) {
			size_t take = p->hneed - p->hlen;

			if (take > len - at)
				take = len - at;
			memcpy(p->hdr + p->hlen, buf + at, take);
			p->hlen += (unsigned)take;
			at += take;
			if (p->hlen == 2 && p->hneed == 2 &&
			    (why = check_start(p)) != NULL)
				return fail(p, WS_CLOSE_PROTOCOL, why, at);
			if (p->hlen < p->hneed)
				continue;	/* only when the input ran out */
			if ((why = header_done(p)) != NULL)
				return fail(p, WS_CLOSE_PROTOCOL, why, at);
			continue;
		}
		size_t n = len - at;

		if (n > p->left)
			n = (size_t)p->left;
		if (p->opcode & 0x8) {
			unmask(p, buf + at, n);
			memcpy(p->ctl + p->ctl_len, buf + at, n);
			p->ctl_len += (unsigned)n;
			p->left -= n;
			at += n;
			if (p->left > 0)
				continue;
			p->in_frame = false;
			rc = control_done(p, h, arg);
		} else {
			rc = data_chunk(p, buf + at, n, h, arg);
			at += n;
		}
		if (rc == -1) {
			if (p->error == 0)
				return fail(p, WS_CLOSE_INTERNAL,
				    "cannot hash", at);
			return at;
		}
		if (rc == 1 || p->closed)
			return at;
	}
	return at;
}
