/*
 * gen.h — a fast generator of random payload: four xoshiro256** streams
 * side by side, so that the compiler can run them in vector registers.
 *
 * Payload only needs to be incompressible and unpredictable enough that a
 * server cannot guess it; it is not key material.  Seeded from getrandom.
 */
#ifndef WSFLOW_GEN_H
#define WSFLOW_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "simd.h"

#define GEN_LANES	4

struct gen {
	uint64_t	s[4][GEN_LANES];	/* state word, then lane */
};

int		gen_seed(struct gen *);
void		gen_seed_from(struct gen *, uint64_t seed);
uint64_t	gen_next(struct gen *);
void		gen_fill(struct gen *, uint8_t *buf, size_t len);
/* The variants gen_fill picks from (simd.h), named for the unit tests. */
void		gen_fill_generic(struct gen *, uint8_t *buf, size_t len);
#if WSFLOW_AVX2
void		gen_fill_avx2(struct gen *, uint8_t *buf, size_t len);
#endif
/* "avx2" or "generic": the one gen_fill runs. */
const char	*gen_fill_variant(void);

#endif
