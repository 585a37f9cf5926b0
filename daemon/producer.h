/*
 * producer.h — producer streams: random data to any ws:// or wss://
 * hashing server, exactly as fast as it is consumed, every digest
 * checked against our own running hash.
 */
#ifndef WSFLOW_PRODUCER_H
#define WSFLOW_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "config.h"

struct wsflowd;

/* The client protocol every worker's local vhosts speak. */
extern const struct lws_protocols producer_protocol;

/*
 * Main thread: build a producer, enter it in the registry as stream id
 * and hand it to a worker.  With `running` set, a producer of that name
 * already listed is refused and its id stored there.
 */
int	producer_launch(struct wsflowd *, const struct producer_conf *,
	    uint64_t id, uint64_t *running, char *err, size_t errlen);

/*
 * Main thread, every tick: every PROGRESS_US one progress line for each
 * entry running parallel streams, their sums (a line per stream would
 * be thousands).  producers_progress_free() at exit.
 */
void	producers_progress(struct wsflowd *, int64_t now_us);
void	producers_progress_free(struct wsflowd *);

#endif
