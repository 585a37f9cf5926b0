/*
 * test_frame.c — the producer's pure pieces: client frame headers, the
 * wide mask against a byte-at-a-time reference, the payload generator
 * against a one-word-at-a-time xoshiro256** (each variant, simd.h: the
 * baseline x86-64 one and the AVX2 one, whichever the CPU runs), and
 * ws:// URL parsing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"
#include "gen.h"
#include "tap.h"
#include "url.h"

/* RFC 6455 §5.2, decoded the slow way. */
static int
parse_header(const uint8_t *h, size_t n, int *op, int *fin, uint64_t *len,
    uint8_t key[4])
{
	size_t i = 2;

	if (n < 6 || !(h[1] & 0x80))
		return -1;
	*fin = h[0] >> 7;
	*op = h[0] & 0x0f;
	*len = h[1] & 0x7f;
	if (*len == 126) {
		*len = (uint64_t)h[2] << 8 | h[3];
		i = 4;
	} else if (*len == 127) {
		*len = 0;
		for (i = 2; i < 10; i++)
			*len = *len << 8 | h[i];
	}
	memcpy(key, h + i, 4);
	return (int)(i + 4);
}

static void
test_headers(void)
{
	static const uint64_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536,
	    (uint64_t)1 << 32, INT64_MAX };
	static const size_t want[] = { 6, 6, 6, 8, 8, 8, 14, 14, 14 };
	uint8_t buf[64], key[4] = { 1, 2, 3, 4 }, got[4];

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint8_t *payload = buf + 32;
		size_t hl = ws_client_header(payload, lens[i], WS_OP_BINARY,
		    i % 2 == 0, key);
		int op = -1, fin = -1;
		uint64_t len = 0;

		ok(hl == want[i] && parse_header(payload - hl, hl, &op, &fin,
		    &len, got) == (int)hl && len == lens[i] &&
		    op == WS_OP_BINARY && fin == (i % 2 == 0) &&
		    memcmp(got, key, 4) == 0,
		    "header for length %llu: %zu octets, minimal, masked",
		    (unsigned long long)lens[i], hl);
	}
}

typedef void	mask_fn(uint8_t *, size_t, const uint8_t *);
typedef void	fill_fn(struct gen *, uint8_t *, size_t);

/* The variants to test: ws_mask and gen_fill as the daemon calls them,
 * the baseline x86-64 ones, and the AVX2 ones where the CPU has AVX2. */
static const struct variant {
	const char	*name;
	mask_fn		*mask;
	fill_fn		*fill;
	bool		 avx2;
} variants[] = {
	{ "dispatched", ws_mask, gen_fill, false },
	{ "generic", ws_mask_generic, gen_fill_generic, false },
#if WSFLOW_AVX2
	{ "avx2", ws_mask_avx2, gen_fill_avx2, true },
#endif
};
#define NVARIANTS	(sizeof(variants) / sizeof(variants[0]))

static bool
runnable(const struct variant *v)
{
#if WSFLOW_AVX2
	__builtin_cpu_init();
	if (v->avx2 && !__builtin_cpu_supports("avx2")) {
		skip(v->name, "this CPU has no AVX2");
		return false;
	}
#endif
	(void)v;
	return true;
}

static void
test_mask_one(const struct variant *v)
{
	uint8_t key[4] = { 0xde, 0xad, 0xbe, 0xef };
	uint8_t *a = malloc(70000), *b = malloc(70000);
	bool all = true;

	/* lengths up to 300 and a few past 32-octet vector steps */
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len < 1100; len += (len < 70 ? 1 :
		    len < 300 ? 37 : 257)) {
			for (size_t i = 0; i < len; i++)
				a[off + i] = b[off + i] = (uint8_t)(i * 7 + off);
			v->mask(a + off, len, key);
			for (size_t i = 0; i < len; i++)
				b[off + i] ^= key[i & 3];
			if (memcmp(a + off, b + off, len) != 0)
				all = false;
		}
	ok(all, "%s mask equals the byte-wise one, every alignment and "
	    "length 0..1100", v->name);
	for (size_t i = 0; i < 65536; i++)
		a[i] = b[i] = (uint8_t)i;
	v->mask(a, 65536, key);
	v->mask(a, 65536, key);
	ok(memcmp(a, b, 65536) == 0, "%s: masking twice gives the payload "
	    "back", v->name);
	free(a);
	free(b);
}

static void
test_mask(void)
{
	for (size_t i = 0; i < NVARIANTS; i++)
		if (runnable(&variants[i]))
			test_mask_one(&variants[i]);
}

/* xoshiro256** one word at a time, as Blackman and Vigna publish it. */
static uint64_t
ref_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t
ref_next(uint64_t s[4])
{
	uint64_t result = ref_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = ref_rotl(s[3], 45);
	return result;
}

/* gen.h's layout: GEN_LANES such generators, one step of each per
 * GEN_LANES words of output, lane order, little-endian words. */
static void
ref_fill(uint64_t lanes[GEN_LANES][4], uint8_t *buf, size_t len)
{
	size_t at = 0;

	while (at < len)
		for (int i = 0; i < GEN_LANES; i++) {
			uint64_t w = ref_next(lanes[i]);

			for (int b = 0; b < 8; b++, w >>= 8)
				if (at + (size_t)(i * 8 + b) < len)
					buf[at + (size_t)(i * 8 + b)] = (uint8_t)w;
			if (i == GEN_LANES - 1)
				at += 8 * GEN_LANES;
		}
}

/* splitmix64 over lane-major words, as gen_seed_from documents. */
static void
ref_seed(uint64_t lanes[GEN_LANES][4], uint64_t seed)
{
	for (int i = 0; i < GEN_LANES; i++)
		for (int w = 0; w < 4; w++) {
			uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);

			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
			z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
			lanes[i][w] = z ^ (z >> 31);
		}
}

static void
test_gen_reference(void)
{
	uint64_t s[4] = { 1, 2, 3, 4 }, lanes[GEN_LANES][4];
	static const size_t cuts[] = { 1, 7, 8, 31, 32, 33, 100, 4096, 65541 };
	static uint8_t want[262144], got[262144];	/* 150000 + a piece */
	uint64_t r1 = ref_next(s), r2 = ref_next(s);
	struct gen g;
	bool seeded = true;

	/* the published generator from state {1, 2, 3, 4}: 11520, 0 */
	ok(r1 == 11520 && r2 == 0, "the reference xoshiro256** starts "
	    "11520, 0 from {1, 2, 3, 4} (got %llu, %llu)",
	    (unsigned long long)r1, (unsigned long long)r2);
	gen_seed_from(&g, 42);
	ref_seed(lanes, 42);
	for (int i = 0; i < GEN_LANES; i++)
		for (int w = 0; w < 4; w++)
			if (g.s[w][i] != lanes[i][w])
				seeded = false;
	ok(seeded, "gen_seed_from(42) is splitmix64 over the lanes");
	for (size_t v = 0; v < NVARIANTS; v++) {
		const struct variant *var = &variants[v];
		size_t at = 0, k = 0;

		if (!runnable(var))
			continue;
		/* one reference stream, cut into pieces of odd sizes: each
		 * piece a whole number of steps but the last of a call */
		ref_seed(lanes, 7 + v);
		gen_seed_from(&g, 7 + v);
		memset(got, 0, sizeof(got));
		while (at < 150000) {
			size_t n = cuts[k++ % (sizeof(cuts) / sizeof(cuts[0]))];

			n = (n + 31) / 32 * 32;		/* whole steps */
			var->fill(&g, got + at, n);
			at += n;
		}
		var->fill(&g, got + at, 5);	/* a tail: a step, 5 octets */
		ref_fill(lanes, want, at + 5);
		ok(memcmp(got, want, at + 5) == 0, "%s generator equals the "
		    "one-word xoshiro256** reference over %zu octets in "
		    "pieces, and its 5-octet tail", var->name, at + 5);
	}
}

static void
test_gen(void)
{
	struct gen g1, g2;
	uint8_t a[1000], b[1000];
	unsigned long counts[256] = { 0 }, n = 0;
	static uint8_t big[1 << 20];

	gen_seed_from(&g1, 42);
	gen_seed_from(&g2, 42);
	gen_fill(&g1, a, sizeof(a));
	gen_fill(&g2, b, 997);
	gen_fill(&g2, b + 997, 3);
	ok(memcmp(a, b, 997) == 0, "same seed, same stream (tails aside)");
	gen_seed_from(&g2, 43);
	gen_fill(&g2, b, sizeof(b));
	ok(memcmp(a, b, sizeof(a)) != 0, "another seed, another stream");
	gen_fill(&g1, big, sizeof(big));
	for (size_t i = 0; i < sizeof(big); i++)
		counts[big[i]]++;
	for (int v = 0; v < 256; v++)	/* expect 4096 each */
		if (counts[v] > 3600 && counts[v] < 4600)
			n++;
	ok(n == 256, "1 MiB of output: every octet value within 12 %% of "
	    "its share (%lu of 256)", n);
	ok(gen_seed(&g1) == 0, "seeding from getrandom works");
}

static void
test_url(void)
{
	struct wsurl u;
	const char *why = "";
	int rc;

	ok(url_parse("ws://127.0.0.1:9000/frame", &u, &why) == 0 && !u.tls &&
	    strcmp(u.host, "127.0.0.1") == 0 && u.port == 9000 &&
	    strcmp(u.path, "/frame") == 0, "ws://host:port/path");
	ok(url_parse("wss://example.org", &u, &why) == 0 && u.tls &&
	    u.port == 443 && strcmp(u.path, "/") == 0, "wss:// defaults: "
	    "port 443, path /");
	ok(url_parse("ws://[::1]:81/message?x=1", &u, &why) == 0 &&
	    strcmp(u.host, "::1") == 0 && u.port == 81 &&
	    strcmp(u.path, "/message?x=1") == 0, "[IPv6] with a query");
	ok(url_parse("ws://h?q", &u, &why) == 0 && u.port == 80 &&
	    strcmp(u.path, "/?q") == 0, "query without a path");
	rc = url_parse("http://h/", &u, &why);	/* before why is read */
	ok(rc == -1, "http:// refused (%s)", why);
	ok(url_parse("ws://h:0/", &u, &why) == -1 &&
	    url_parse("ws://h:70000/", &u, &why) == -1 &&
	    url_parse("ws://h:x/", &u, &why) == -1, "bad ports refused");
	ok(url_parse("ws:///", &u, &why) == -1 &&
	    url_parse("ws://[::1/", &u, &why) == -1, "no host, unclosed [ "
	    "refused");
}

/* ws_mask and gen_fill run AVX2 where the CPU has it, generic where it
 * has not or the environment says WSFLOW_GENERIC=1. */
static void
test_dispatch(void)
{
	const char *g = getenv("WSFLOW_GENERIC");
	const char *want = wsflow_use_avx2() ? "avx2" : "generic";

	ok(strcmp(ws_mask_variant(), want) == 0 &&
	    strcmp(gen_fill_variant(), want) == 0, "dispatch: mask %s, "
	    "generator %s, want %s (WSFLOW_GENERIC=%s)", ws_mask_variant(),
	    gen_fill_variant(), want, g ? g : "");
}

int
main(void)
{
	test_headers();
	test_dispatch();
	test_mask();
	test_gen_reference();
	test_gen();
	test_url();
	return done();
}
