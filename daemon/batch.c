/*
 * batch.c — running digests at batch boundaries.
 */
#include <string.h>

#include "batch.h"

int
batcher_init(struct batcher *b, const EVP_MD *type, uint64_t batch_size)
{
	memset(b, 0, sizeof(*b));
	b->batch_size = batch_size;
	b->md_len = (unsigned)EVP_MD_get_size(type);
	b->md = EVP_MD_CTX_new();
	b->scratch = EVP_MD_CTX_new();
	if (b->md == NULL || b->scratch == NULL ||
	    EVP_DigestInit_ex(b->md, type, NULL) != 1) {
		batcher_free(b);
		return -1;
	}
	return 0;
}

void
batcher_free(struct batcher *b)
{
	EVP_MD_CTX_free(b->md);
	EVP_MD_CTX_free(b->scratch);
	b->md = b->scratch = NULL;
}

/* Start a new message: a fresh hash, no octets towards a batch. */
int
batcher_begin(struct batcher *b)
{
	b->fill = 0;
	return EVP_DigestInit_ex(b->md, NULL, NULL) == 1 ? 0 : -1;
}

int
batcher_running(struct batcher *b, uint8_t *out)
{
	unsigned len;

	if (EVP_MD_CTX_copy_ex(b->scratch, b->md) != 1 ||
	    EVP_DigestFinal_ex(b->scratch, out, &len) != 1)
		return -1;
	return 0;
}

/* The digest of the whole message; the batcher then needs a begin. */
int
batcher_final(struct batcher *b, uint8_t *out)
{
	unsigned len;

	return EVP_DigestFinal_ex(b->md, out, &len) == 1 ? 0 : -1;
}

int
batcher_feed(struct batcher *b, const void *data, size_t len,
    batch_emit_fn emit, void *arg)
{
	const uint8_t *p = data;
	uint8_t md[EVP_MAX_MD_SIZE];

	while (len > 0) {
		uint64_t room = b->batch_size - b->fill;
		size_t n = len < room ? len : (size_t)room;

		if (EVP_DigestUpdate(b->md, p, n) != 1)
			return -1;
		p += n;
		len -= n;
		b->fill += n;
		if (b->fill == b->batch_size) {
			b->fill = 0;
			if (batcher_running(b, md) == -1 ||
			    emit(arg, md, b->md_len) == -1)
				return -1;
		}
	}
	return 0;
}

size_t
batcher_max_boundaries(const struct batcher *b, size_t len)
{
	/* ceil(len / batch): a chunk starting one octet short of a
	 * boundary crosses it first; no wrap for any len. */
	return (size_t)(len / b->batch_size) + (len % b->batch_size != 0);
}

void
digest_hex(const uint8_t *md, unsigned len, char *hex)
{
	static const char digits[] = "0123456789abcdef";

	for (unsigned i = 0; i < len; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[2 * len] = '\0';
}

static int
nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parse exactly 2*len hex digits; -1 on any other input. */
int
digest_unhex(const char *hex, size_t hexlen, uint8_t *md, unsigned len)
{
	if (hexlen != 2 * (size_t)len)
		return -1;
	for (unsigned i = 0; i < len; i++) {
		int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		md[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
