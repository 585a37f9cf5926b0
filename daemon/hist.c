/*
 * hist.c — latency histograms: fixed log-spaced buckets, constant memory.
 *
 * Ten buckets a decade (edges 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a
 * power of ten, from 10 µs): a value is counted in the first bucket whose
 * upper edge is at least the value.  One thread adds, others read with
 * relaxed loads: a reader may see a count one sample ahead of its bucket,
 * never a torn value.
 */
#include <stddef.h>
#include <string.h>

#include "hist.h"

#define DECADE(m)	10 * (m), 12 * (m), 15 * (m), 20 * (m), 25 * (m),	\
			30 * (m), 40 * (m), 50 * (m), 60 * (m), 80 * (m)

static const uint64_t edges[HIST_EDGES] = {
	DECADE(1ULL), DECADE(10ULL), DECADE(100ULL), DECADE(1000ULL),
	DECADE(10000ULL), DECADE(100000ULL), DECADE(1000000ULL),
};

/* The 1-2.5-5 edges, as indices into edges[]. */
static const unsigned char prom[] = {
	0, 4, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40, 44, 47, 50, 54, 57,
	60, 64, 67,
};

#define LOAD(x)		atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v)	atomic_store_explicit(&(x), (v), memory_order_relaxed)

static unsigned
bucket_of(uint64_t us)
{
	unsigned lo = 0, hi = HIST_EDGES;	/* answer in [lo, hi] */

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (us <= edges[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

void
hist_add(struct hist *h, uint64_t us)
{
	unsigned b = bucket_of(us);

	STORE(h->n[b], LOAD(h->n[b]) + 1);
	STORE(h->sum_us, LOAD(h->sum_us) + us);
	if (us > LOAD(h->max_us))
		STORE(h->max_us, us);
	STORE(h->count, LOAD(h->count) + 1);
}

void
hist_read(const struct hist *h, struct hist_snap *s)
{
	s->count = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		s->n[i] = LOAD(h->n[i]);
		s->count += s->n[i];	/* consistent with the buckets */
	}
	s->sum_us = LOAD(h->sum_us);
	s->max_us = LOAD(h->max_us);
}

void
hist_merge(struct hist_snap *into, const struct hist_snap *s)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->n[i] += s->n[i];
	into->count += s->count;
	into->sum_us += s->sum_us;
	if (s->max_us > into->max_us)
		into->max_us = s->max_us;
}

/* The q-quantile (0 < q <= 1): the upper edge of its bucket, capped at
 * the max; 0 when empty. */
uint64_t
hist_quantile(const struct hist_snap *s, double q)
{
	uint64_t rank, seen = 0;

	if (s->count == 0)
		return 0;
	if (q <= 0)
		q = 0;
	rank = (uint64_t)(q * (double)s->count);
	if ((double)rank < q * (double)s->count || rank == 0)
		rank++;				/* ceil, at least the first */
	if (rank > s->count)
		rank = s->count;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += s->n[i];
		if (seen >= rank)
			return i < HIST_EDGES && edges[i] < s->max_us ?
			    edges[i] : s->max_us;
	}
	return s->max_us;
}

uint64_t
hist_edge_us(unsigned i)
{
	return i < HIST_EDGES ? edges[i] : UINT64_MAX;
}

unsigned
hist_prom_edges(void)
{
	return sizeof(prom) / sizeof(prom[0]);
}

uint64_t
hist_prom_edge_us(unsigned k)
{
	return edges[prom[k]];
}

/* Samples at or below the k-th Prometheus edge. */
uint64_t
hist_prom_cumulative(const struct hist_snap *s, unsigned k)
{
	uint64_t c = 0;

	for (unsigned i = 0; i <= prom[k]; i++)
		c += s->n[i];
	return c;
}
