/*
 * gen.h — a fast generator of random payload (xoshiro256**).
 *
 * Payload only needs to be incompressible and unpredictable enough that a
 * server cannot guess it; it is not key material.  Seeded from getrandom.
 */
#ifndef WSFLOW_GEN_H
#define WSFLOW_GEN_H

#include <stddef.h>
#include <stdint.h>

struct gen {
	uint64_t	s[4];
};

int		gen_seed(struct gen *);
void		gen_seed_from(struct gen *, uint64_t seed);
uint64_t	gen_next(struct gen *);
void		gen_fill(struct gen *, uint8_t *buf, size_t len);

#endif
