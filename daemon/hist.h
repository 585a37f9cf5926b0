/*
 * hist.h — latency histograms in constant memory: fixed log-spaced
 * buckets (10 per decade, 10 µs to 80 s), written by one thread, read by
 * any without locks.  Percentiles come out as the upper edge of their
 * bucket (at most a third above the true value), never above the max.
 */
#ifndef WSFLOW_HIST_H
#define WSFLOW_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define HIST_EDGES	70		/* upper edges, 10 µs .. 80 s */
#define HIST_BUCKETS	(HIST_EDGES + 1)	/* and everything above */

struct hist {
	_Atomic uint64_t	 n[HIST_BUCKETS];
	_Atomic uint64_t	 count;
	_Atomic uint64_t	 sum_us;
	_Atomic uint64_t	 max_us;
};

/* A copy taken at one moment, or the sum of several. */
struct hist_snap {
	uint64_t		 n[HIST_BUCKETS];
	uint64_t		 count;
	uint64_t		 sum_us;
	uint64_t		 max_us;
};

void		 hist_add(struct hist *, uint64_t us);	/* the writer only */
void		 hist_read(const struct hist *, struct hist_snap *);
void		 hist_merge(struct hist_snap *, const struct hist_snap *);
uint64_t	 hist_quantile(const struct hist_snap *, double q);
uint64_t	 hist_edge_us(unsigned i);	/* bucket i's upper edge */
/* Prometheus: the 1-2.5-5 subset of the edges, 10 µs .. 50 s. */
unsigned	 hist_prom_edges(void);
uint64_t	 hist_prom_edge_us(unsigned k);
uint64_t	 hist_prom_cumulative(const struct hist_snap *, unsigned k);

#endif
