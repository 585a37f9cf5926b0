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
 * Main thread: build an entry's producers (parallel of them), enter them
 * in the registry as streams *id, *id + 1, ... and hand them to workers.
 * *id 0: the ids are taken here, in a row, and the first is stored
 * there.  With `running` set, a producer of that name already listed is
 * refused and its id stored there.  Returns how many it started (1
 * and up: a later one that cannot start leaves the others running), or
 * -1 when none did.
 */
int	producer_launch(struct wsflowd *, const struct producer_conf *,
	    uint64_t *id, uint64_t *running, char *err, size_t errlen);
/* How many streams an entry starts. */
uint32_t producer_streams(const struct producer_conf *);

/*
 * Main thread, every tick: every PROGRESS_US one progress line for each
 * entry running parallel streams, their sums (a line per stream would
 * be thousands).  producers_progress_free() at exit.
 */
void	producers_progress(struct wsflowd *, int64_t now_us);
void	producers_progress_free(struct wsflowd *);

#endif
