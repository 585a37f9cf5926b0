/*
 * batch.h — the running digest of one message, cut at batch boundaries.
 *
 * Pure logic over OpenSSL's EVP: the server uses it to produce digests,
 * producers to know which digest to expect.  A chunk may cross any number
 * of boundaries; every boundary yields the digest of the message so far.
 */
#ifndef WSFLOW_BATCH_H
#define WSFLOW_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

struct batcher {
	EVP_MD_CTX	*md;		/* running hash of the message */
	EVP_MD_CTX	*scratch;	/* a copy to finalise mid-message */
	uint64_t	 batch_size;
	uint64_t	 fill;		/* octets since the last boundary */
	unsigned	 md_len;
};

/* Called at each boundary with the digest of the message so far. */
typedef int	(*batch_emit_fn)(void *arg, const uint8_t *md, unsigned len);

int	batcher_init(struct batcher *, const EVP_MD *, uint64_t batch_size);
void	batcher_free(struct batcher *);
int	batcher_begin(struct batcher *);
int	batcher_feed(struct batcher *, const void *data, size_t len,
	    batch_emit_fn emit, void *arg);
int	batcher_running(struct batcher *, uint8_t *out);
int	batcher_final(struct batcher *, uint8_t *out);

/* Most boundaries one chunk of len octets can cross. */
size_t	batcher_max_boundaries(const struct batcher *, size_t len);

void	digest_hex(const uint8_t *md, unsigned len, char *hex);
int	digest_unhex(const char *hex, size_t hexlen, uint8_t *md,
	    unsigned len);

#endif
