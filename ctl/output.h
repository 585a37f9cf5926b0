/*
 * output.h — wsflowctl's two ways to print replies: text for people,
 * JSON (-j) for scripts.  Same calls, same data (bgpctl's struct output).
 */
#ifndef WSFLOWCTL_OUTPUT_H
#define WSFLOWCTL_OUTPUT_H

#include <stdio.h>

#include "ctl_proto.h"
#include "parser.h"

/* One refresh of watch: what the daemon said, and when. */
struct snapshot {
	double				 time;		/* Unix seconds */
	const struct ctl_status		*status;
	const struct ctl_listener	*listeners;
	size_t				 nlisteners;
	const struct ctl_stream		*streams;
	size_t				 nstreams;
	/* text: the previous status and the seconds since, for rates */
	const struct ctl_status		*prev;		/* NULL: the first */
	double				 elapsed;
	int				 bits;		/* text: bit/s */
};

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
	/* watch: one frame (text) or one line (JSON) into f */
	void	(*snapshot)(FILE *f, const struct snapshot *);
};

extern const struct output text_output;
/* Text: rates in bit/s (--bits); JSON keeps octets a second. */
extern int text_bits;
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
