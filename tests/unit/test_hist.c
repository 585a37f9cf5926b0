/*
 * test_hist.c — the latency histogram (daemon/hist.c) against a sorted
 * reference: every quantile is at least the true one (nearest rank) and
 * at most a third above it (or the max); Prometheus cumulative counts are
 * exact at their edges; merging two equals adding both.
 *
 * TEST_SEED=n in the environment changes the random samples.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "tap.h"
#include "testutil.h"

#define NSAMPLES	20000

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The nearest-rank q-quantile of sorted v[n]. */
static uint64_t
true_quantile(const uint64_t *v, size_t n, double q)
{
	size_t rank = (size_t)ceil(q * (double)n);

	if (rank == 0)
		rank = 1;
	return v[rank - 1];
}

/* Log-uniform between lo and hi µs. */
static uint64_t
log_uniform(double lo, double hi)
{
	double u = (double)(rnd() >> 11) / 9007199254740992.0;

	return (uint64_t)exp(log(lo) + u * (log(hi) - log(lo)));
}

static void
check_against(const char *what, uint64_t *v, size_t n)
{
	static struct hist h;
	struct hist_snap s;
	static const double qs[] = { 0.01, 0.5, 0.9, 0.99, 0.999, 1.0 };
	int bad = 0;

	memset(&h, 0, sizeof(h));
	for (size_t i = 0; i < n; i++)
		hist_add(&h, v[i]);
	hist_read(&h, &s);
	qsort(v, n, sizeof(*v), cmp_u64);
	ok(s.count == n && s.max_us == v[n - 1], "%s: count %llu, max %llu",
	    what, (unsigned long long)s.count, (unsigned long long)s.max_us);
	for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
		uint64_t want = true_quantile(v, n, qs[k]);
		uint64_t got = hist_quantile(&s, qs[k]);

		/* Below the first edge (10 µs) the bucket is all we know. */
		if (got < want || (got > want + want / 3 && got > 10 &&
		    got != s.max_us)) {
			diag("%s: q %.3f: got %llu, true %llu", what, qs[k],
			    (unsigned long long)got, (unsigned long long)want);
			bad++;
		}
	}
	ok(bad == 0, "%s: p1 p50 p90 p99 p99.9 max within [true, true*4/3]",
	    what);
	bad = 0;
	for (unsigned k = 0; k < hist_prom_edges(); k++) {
		uint64_t edge = hist_prom_edge_us(k), c = 0;

		while (c < n && v[c] <= edge)
			c++;
		if (hist_prom_cumulative(&s, k) != c)
			bad++;
	}
	ok(bad == 0, "%s: Prometheus cumulative counts exact at %u edges",
	    what, hist_prom_edges());
}

int
main(void)
{
	static uint64_t v[NSAMPLES];
	static struct hist a, b, all;
	struct hist_snap sa, sb, sall;

	rng_seed(0x5eed4157);
	{
		struct hist_snap s;

		memset(&a, 0, sizeof(a));
		hist_read(&a, &s);
		ok(hist_quantile(&s, 0.99) == 0, "empty: every quantile 0");
		hist_add(&a, 1234);
		hist_read(&a, &s);
		ok(hist_quantile(&s, 0.5) == 1234 &&
		    hist_quantile(&s, 1.0) == 1234,
		    "one sample of 1234 µs: p50 = max = 1234 (capped at max)");
	}
	for (size_t i = 0; i < NSAMPLES; i++)
		v[i] = log_uniform(1, 1e8);
	check_against("log-uniform 1 µs .. 100 s", v, NSAMPLES);
	for (size_t i = 0; i < NSAMPLES; i++)
		v[i] = 5000 + rnd() % 100;
	check_against("narrow 5000..5099 µs", v, NSAMPLES);
	for (size_t i = 0; i < NSAMPLES; i++)
		v[i] = i % 100 == 0 ? 200000 : 300 + rnd() % 50;
	check_against("1 % outliers at 200 ms over 300 µs", v, NSAMPLES);
	for (size_t i = 0; i < NSAMPLES; i++)
		v[i] = 90000000 + rnd() % 1000;
	check_against("all above the last edge (90 s)", v, NSAMPLES);

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&all, 0, sizeof(all));
	for (size_t i = 0; i < NSAMPLES; i++) {
		uint64_t x = log_uniform(1, 1e7);

		hist_add(i % 3 ? &a : &b, x);
		hist_add(&all, x);
	}
	hist_read(&a, &sa);
	hist_read(&b, &sb);
	hist_read(&all, &sall);
	hist_merge(&sa, &sb);
	ok(memcmp(sa.n, sall.n, sizeof(sa.n)) == 0 && sa.count == sall.count &&
	    sa.sum_us == sall.sum_us && sa.max_us == sall.max_us,
	    "merge of two histograms equals one of all their samples");
	ok(sizeof(struct hist) <= 640, "struct hist is %zu octets (constant, "
	    "at most 640)", sizeof(struct hist));
	return done();
}
