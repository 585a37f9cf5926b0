/*
 * live.h — the live page's data: one JSON snapshot of the daemon a
 * second (status and every stream, live and ended), built once for all
 * the /live viewers of every worker, and the same streams as an HTML
 * table for the page itself (its view without script).
 */
#ifndef WSFLOW_LIVE_H
#define WSFLOW_LIVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct wsflowd;

/* A snapshot, shared by the viewers sending it: freed by its last put. */
struct live_snap {
	atomic_uint	 refs;
	size_t		 len;
	char		 json[];
};

/* The newest snapshot, and the second it was built in. */
struct live {
	pthread_mutex_t	 lock;
	struct live_snap *snap;
	int64_t		 sec;
};

void	live_init(struct live *);
void	live_free(struct live *);
/*
 * This second's snapshot, built by the first viewer (of any worker) to
 * ask for it in that second; a reference the caller puts.  NULL: out of
 * memory.
 */
struct live_snap *live_get(struct wsflowd *, int64_t now_us);
void	live_put(struct live_snap *);
/* The page: its HTML with the streams' table inside (malloc'd). */
int	live_page(struct wsflowd *, char **out, size_t *outlen);

#endif
