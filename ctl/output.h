/*
 * output.h — wsflowctl's two ways to print replies: text for people,
 * JSON (-j) for scripts.  Same calls, same data (bgpctl's struct output).
 */
#ifndef WSFLOWCTL_OUTPUT_H
#define WSFLOWCTL_OUTPUT_H

#include "ctl_proto.h"
#include "parser.h"

struct output {
	void	(*head)(enum action);
	void	(*status)(const struct ctl_status *);
	void	(*listener)(const struct ctl_listener *);
	void	(*stream)(enum action, const struct ctl_stream *);
	/* status: the exit status it brings, the "code" of a JSON error */
	void	(*result)(enum action, const struct ctl_result *, int status);
	void	(*error)(const char *msg, int status);
	void	(*tail)(enum action);
	void	(*help)(void);
	void	(*version)(void);
};

extern const struct output text_output;
extern const struct output json_output;

/* A stream's digest latencies as a histogram (quantiles: hist.h). */
static inline void
stream_latency(const struct ctl_stream *s, struct hist_snap *h)
{
	h->count = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		h->count += h->n[i] = s->latency_n[i];
	h->sum_us = s->latency_sum_us;
	h->max_us = s->latency_max_us;
}

#endif
