/*
 * testutil.h — what the unit tests share besides tap.h: a seeded
 * generator for random streams and cuts, and allocation that cannot fail.
 *
 *	rng_seed(default);	TEST_SEED=n in the environment overrides it
 *	rnd(), rnd_range(lo, hi)
 *	xmalloc(n), xrealloc(p, n)
 */
#ifndef WSFLOW_TESTUTIL_H
#define WSFLOW_TESTUTIL_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tap.h"

static uint64_t rng_state = 1;

/* The default seed, or TEST_SEED's; said in a diagnostic line. */
static inline void
rng_seed(uint64_t dflt)
{
	const char *seed = getenv("TEST_SEED");

	rng_state = dflt;
	if (seed != NULL && *seed != '\0')
		rng_state = strtoull(seed, NULL, 0) | 1;
	diag("seed %#" PRIx64 " (TEST_SEED to change)", rng_state);
}

static inline uint64_t
rnd(void)				/* xorshift64* */
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

/* Uniform enough in [lo, hi]. */
static inline uint64_t
rnd_range(uint64_t lo, uint64_t hi)
{
	return hi <= lo ? lo : lo + rnd() % (hi - lo + 1);
}

static inline void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	return p;
}

static inline void *
xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n ? n : 1)) == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	return p;
}

#endif
