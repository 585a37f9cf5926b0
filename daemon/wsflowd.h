/*
 * wsflowd.h — the daemon: the main thread's struct wsflowd (signals,
 * control, listeners, systemd) and the workers, each a thread with its
 * own lws context that runs streams; prototypes grouped by file.
 *
 * Nothing lives in file-scope globals (log.c's destination excepted).
 * lws is not thread-safe beyond lws_cancel_service(): the main thread
 * talks to a worker only by posting to its inbox and waking it.
 */
#ifndef WSFLOWD_H
#define WSFLOWD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>
#include <openssl/evp.h>

#include "config.h"
#include "stream.h"

#define WSFLOW_VERSION		"0.2.0"

/*
 * Receive sizing (lws notes §2.1): big reads into one buffer per worker,
 * payload handed over in place.  256 KiB reads cost ~5 % less CPU per GB
 * than 64 KiB (measured).  lws also allocates rx_buffer_size per
 * connection for small frames, but leaves its pages untouched.
 */
#ifndef WSFLOW_RX_CHUNK
#define WSFLOW_RX_CHUNK		(256 * 1024)
#endif
#define WSFLOW_PT_BUF		(WSFLOW_RX_CHUNK + 4096)
#define WSFLOW_STOP_GRACE_US	(3 * LWS_US_PER_SEC)
#define WSFLOW_WORKERS_MAX	64
/* A worker whose loop has not turned for this long is stuck (at least;
 * half the watchdog interval when that is longer). */
#define WSFLOW_STALL_MIN_US	(4 * LWS_US_PER_SEC)

struct listener {
	struct wsflowd	*wd;
	size_t		 index;
	char		 address[64];
	int		 port;
	bool		 tls;
	char		*tls_cert;	/* the configured entry's, copied */
	char		*tls_key;
	bool		 inherited;	/* from systemd: never unlink/close early */
	int		 fd;
	struct lws	*wsi;		/* the adopted listening socket */
	lws_sorted_usec_list_t sul_resume;	/* after EMFILE */
};

struct server_totals {
	counter_t	 connections;		/* open websocket streams */
	counter_t	 connections_total;
	counter_t	 bytes_received;
	counter_t	 digests_sent;
};

struct producer_totals {
	counter_t	 running;
	counter_t	 bytes_sent;
	counter_t	 digests_received;
	counter_t	 digests_verified;
	counter_t	 digest_mismatches;
};

/* A plain snapshot of the totals of every worker. */
struct totals {
	uint64_t	 sockets, refused;
	uint64_t	 connections, connections_total, bytes_received,
			 digests_sent;
	uint64_t	 running, bytes_sent, digests_received,
			 digests_verified, digest_mismatches;
};

/* What a worker needs of the configuration, its own copy. */
struct server_params {
	uint64_t	 batch_size;
	const EVP_MD	*md;
	uint32_t	 idle_timeout;
	uint32_t	 handshake_timeout;
	bool		 metrics;
	bool		 lws_framing;	/* plain listeners parsed by lws too */
};

enum wmsg_type {
	WMSG_ADOPT,		/* fd accepted on listener */
	WMSG_START,		/* a producer, with its id */
	WMSG_STOP,		/* one stream by id */
	WMSG_STOP_ALL,
	WMSG_PARAMS,		/* after a reload */
	WMSG_EXIT,
};

struct wmsg {
	TAILQ_ENTRY(wmsg) entry;
	enum wmsg_type	 type;
	int		 fd;
	size_t		 listener;
	uint64_t	 id;
	bool		 going_away;	/* daemon stop: 1001 */
	struct producer	*producer;	/* START: launched, not yet run */
	struct server_params params;
};
TAILQ_HEAD(wmsg_list, wmsg);

struct producer;
TAILQ_HEAD(producer_list, producer);

struct worker {
	struct wsflowd	*wd;
	unsigned	 index;
	pthread_t	 thread;
	bool		 running;
	struct lws_context *ctx;
	struct lws_vhost *local_vh;	/* producers, the inbox */
	struct lws_vhost **vh;		/* one per listener */
	char		(*vh_names)[96];/* lws keeps the name pointers */
	struct lws_protocols local_protocols[3];
	struct lws_protocols server_protocols[3];
	uint8_t		*rxbuf;		/* wsserver.c reads into it */
	struct {
		char	*ca;
		char	 name[32];
		struct lws_vhost *vh;
	}		 ca_vhosts[16];	/* client vhosts per private CA */
	size_t		 nca_vhosts;
	struct server_params params;
	struct stream_list streams;	/* its own, through wentry */
	struct producer_list producers;
	pthread_mutex_t	 inbox_lock;
	struct wmsg_list inbox;
	atomic_uint	 load;		/* sockets and producers it runs */
	struct server_totals server;
	struct producer_totals prod;
	lws_sorted_usec_list_t sul_tick;
	atomic_int_fast64_t beat_us;	/* its last tick: it is turning */
	bool		 done;
};

struct wsflowd {
	struct wsflow_conf conf;
	const char	*conf_path;
	const EVP_MD	*md;		/* server.digest */
	struct lws_context *ctx;	/* the main thread's */
	struct lws_vhost *local_vh;	/* signals, control, acceptors */
	struct lws_protocols main_protocols[5];
	struct worker	*workers;
	unsigned	 nworkers;
	struct listener	*listeners;
	size_t		 nlisteners;
	unsigned	 fd_limit;	/* for each lws context's tables */

	pthread_mutex_t	 reg_lock;	/* the registry of streams */
	struct stream_list streams;
	unsigned long	 nstreams;
	atomic_uint_fast64_t next_stream_id;
	atomic_uint_fast64_t sockets;	/* adopted by a worker, not closed */
	atomic_uint_fast64_t pending;	/* accepted, not yet adopted */
	counter_t	 refused;	/* over max_connections */

	int64_t		 started_us;
	lws_sorted_usec_list_t sul_tick;	/* 1 s housekeeping */
	lws_sorted_usec_list_t sul_stop;	/* graceful stop deadline */
	lws_sorted_usec_list_t sul_watchdog;
	uint64_t	 watchdog_usec;
	int64_t		 stall_us;	/* a worker this late is stuck */
	int64_t		 stop_deadline_us;
	struct lws	*ctl_wsi;	/* listening control socket */
	lws_sorted_usec_list_t sul_ctl_resume;	/* after EMFILE */
	char		 ctl_path[108];	/* what we bound, to unlink */
	bool		 ctl_bound;
	bool		 ctl_inherited;
	unsigned	 ctl_conns;
	int		 log_floor;	/* from -v: reloads keep it */
	atomic_bool	 stopping;
	bool		 done;
	int		 exit_code;
};

static inline uint64_t
stream_new_id(struct wsflowd *wd)
{
	return atomic_fetch_add(&wd->next_stream_id, 1) + 1;
}

/* reload.c */
int	daemon_reload(struct wsflowd *, char *err, size_t errlen);

/* worker.c */
int	workers_start(struct wsflowd *);
void	workers_join(struct wsflowd *);
struct worker *worker_pick(struct wsflowd *);
int	worker_post(struct worker *, struct wmsg *);
int	worker_post_simple(struct worker *, enum wmsg_type, uint64_t id,
	    bool going_away);
void	worker_params(struct wsflowd *, struct server_params *);
int	worker_stalled(struct wsflowd *, int64_t *late_us);
void	totals_get(struct wsflowd *, struct totals *);

/* server.c */
extern const struct lws_protocols server_protocol;
void	server_stop_all(struct worker *);
void	server_stream_close(struct stream *);
void	server_tick(struct worker *, int64_t now_us);

/* http.c */
int	http_serve(struct worker *, struct lws *, const char *path);

/* listen.c */
extern const struct lws_protocols acceptor_protocol;
unsigned listen_fit_fds(struct wsflow_conf *);
bool	accept_out_of_room(int err);
void	accept_pause(struct lws_context *, struct lws *,
	    lws_sorted_usec_list_t *, sul_cb_t resume);
int	listeners_open(struct wsflowd *, const int *inherited, size_t n);
void	listeners_close(struct wsflowd *);
struct lws_vhost *listener_vhost(struct worker *, const struct listener *,
	    const char *name);

/* producer.c */
extern const struct lws_protocols producer_protocol;
int	producer_launch(struct wsflowd *, const struct producer_conf *,
	    uint64_t id, uint64_t *running, char *err, size_t errlen);
void	producer_run(struct worker *, struct producer *);
void	producer_discard(struct worker *, struct producer *);
void	producer_stop_id(struct worker *, uint64_t id, bool going_away);
void	producers_stop_all(struct worker *, bool going_away);
void	producers_tick(struct worker *, int64_t now_us);
void	producers_free_all(struct worker *);

#endif
