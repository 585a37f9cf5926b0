/*
 * worker.h — worker threads: each runs its own lws context and loop, and
 * the streams handed to it, whatever their kind.
 *
 * lws is not thread-safe beyond lws_cancel_service(): another thread
 * talks to a worker only by posting work to its inbox, which the worker
 * runs on its own thread.  The worker knows streams only through their
 * operations (stream.h) and work only through its run function.
 */
#ifndef WSFLOW_WORKER_H
#define WSFLOW_WORKER_H

#include <sys/queue.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "config.h"
#include "stream.h"

/*
 * Receive sizing: big reads into one buffer per worker, payload handed on
 * in place.  256 KiB reads cost ~5 % less CPU per GB than 64 KiB
 * (measured).
 */
#ifndef WSFLOW_RX_CHUNK
#define WSFLOW_RX_CHUNK		(256 * 1024)
#endif
#define WSFLOW_PT_BUF		(WSFLOW_RX_CHUNK + 4096)
/* A worker whose loop has not turned for this long is stuck (at least;
 * half the watchdog interval when that is longer). */
#define WSFLOW_STALL_MIN_US	(4 * LWS_US_PER_SEC)

struct wsflowd;
struct worker;

/* Work for a worker: run on its thread, or dropped if it never ran. */
struct work {
	TAILQ_ENTRY(work) entry;
	void		(*run)(struct worker *, struct work *);
	void		(*drop)(struct worker *, struct work *);	/* or NULL */
};
TAILQ_HEAD(work_list, work);

struct worker {
	struct wsflowd	*wd;
	unsigned	 index;
	pthread_t	 thread;
	bool		 running;
	struct lws_context *ctx;
	struct lws_vhost *local_vh;	/* clients (producers), the inbox */
	struct lws_protocols local_protocols[3];
	struct {
		char	*ca;
		char	 name[32];
		struct lws_vhost *vh;
	}		 ca_vhosts[16];	/* client vhosts per private CA */
	size_t		 nca_vhosts;
	uint8_t		*rxbuf;		/* WSFLOW_RX_CHUNK, for reads */
	uint8_t		*txbuf;		/* producers' frames: LWS_PRE + */
	size_t		 txcap;		/* the largest frame_size, grown */
	unsigned	 connecting;	/* producer connects in flight */
	lws_dll2_owner_t connect_queue;	/* producers waiting for a slot */
	struct server_params params;	/* its own copy: reloads post it */
	struct stream_list streams;	/* its own, through wentry */
	pthread_mutex_t	 inbox_lock;
	struct work_list inbox;
	atomic_uint	 load;		/* sockets and producers it runs */
	struct totals_shard totals;
	lws_sorted_usec_list_t sul_tick;
	atomic_int_fast64_t beat_us;	/* its last tick: it is turning */
	bool		 done;
};

/* Contexts first, then vhosts (listen.c adds its own), then threads. */
int	workers_create(struct wsflowd *,
	    const struct lws_protocols *client_protocol);
int	workers_run(struct wsflowd *);
void	workers_join(struct wsflowd *);

struct worker *worker_pick(struct wsflowd *);
void	worker_post(struct worker *, struct work *);
void	worker_stop(struct worker *, uint64_t id, bool going_away);
void	worker_stop_all(struct worker *, bool going_away);
void	worker_set_params(struct worker *, const struct server_params *);
int	worker_stalled(struct wsflowd *, int64_t *late_us);
uint8_t	*worker_txbuf(struct worker *, size_t len);

/* On the worker: its streams, entered in the registry too. */
void	worker_stream_add(struct worker *, struct stream *, enum stream_role,
	    enum wsflow_mode, const struct stream_ops *);
void	worker_stream_attach(struct worker *, struct stream *);
void	worker_stream_remove(struct worker *, struct stream *);
struct lws_vhost *worker_client_vhost(struct worker *, const char *ca);

#endif
