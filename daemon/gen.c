/*
 * gen.c — xoshiro256** (Blackman and Vigna), eight octets per step.
 */
#include <sys/random.h>

#include <string.h>

#include "gen.h"

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t
gen_next(struct gen *g)
{
	uint64_t *s = g->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* splitmix64 spreads one word over the state (never all zero). */
void
gen_seed_from(struct gen *g, uint64_t seed)
{
	for (int i = 0; i < 4; i++) {
		uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		g->s[i] = z ^ (z >> 31);
	}
}

int
gen_seed(struct gen *g)
{
	uint64_t seed;

	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		return -1;
	gen_seed_from(g, seed);
	return 0;
}

void
gen_fill(struct gen *g, uint8_t *buf, size_t len)
{
	uint64_t v;

	for (; len >= 8; buf += 8, len -= 8) {
		v = gen_next(g);
		memcpy(buf, &v, 8);
	}
	if (len > 0) {
		v = gen_next(g);
		memcpy(buf, &v, len);
	}
}
