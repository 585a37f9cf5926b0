/*
 * stream.h — what every stream has in common, server connection or
 * producer: identity, counters, the operations its worker may ask of it,
 * and the registry of all of them with the daemon's totals beside it.
 *
 * A stream belongs to one worker thread, the only one that writes its
 * counters.  The control side reads them from another thread: they are
 * relaxed atomics written with a plain load and store (one writer), so
 * the hot path takes no lock and a reader never sees a torn value.  The
 * registry (the list of all streams) has a mutex, taken when a stream
 * comes and goes and while the control side walks it.
 */
#ifndef WSFLOW_STREAM_H
#define WSFLOW_STREAM_H

#include <sys/queue.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "hist.h"

struct worker;
struct ctl_stream;

typedef _Atomic uint64_t counter_t;

#define STAT_GET(x)	atomic_load_explicit(&(x), memory_order_relaxed)
#define STAT_SET(x, v)	atomic_store_explicit(&(x), (uint64_t)(v),	\
			    memory_order_relaxed)
/* Single writer: no read-modify-write instruction needed. */
#define STAT_ADD(x, n)	STAT_SET(x, STAT_GET(x) + (uint64_t)(n))

struct stream_stats {
	counter_t	 bytes;		/* received (server) / sent (producer) */
	counter_t	 messages;	/* messages completed */
	counter_t	 digests;	/* sent (server) / received (producer) */
	counter_t	 verified;	/* producer: digests that matched */
	counter_t	 mismatched;	/* producer: digests that did not */
	counter_t	 bp_pauses;	/* times the peer held us back */
	counter_t	 bp_usec;	/* time spent held back */
	counter_t	 latency_last_us; /* last byte of a batch -> digest */
	counter_t	 latency_max_us;
	struct hist	 latency;	/* producers: every digest's */
	struct hist	 connect;	/* producers: each connection's setup */
	counter_t	 fail[3];	/* producers: enum fail_reason */
	/* Producers, the last connection: TCP, TLS, the upgrade (µs). */
	counter_t	 connect_tcp_us, connect_tls_us, connect_upgrade_us;
	counter_t	 bytes_per_sec;	/* over the last sample interval */
	uint64_t	 rate_bytes;	/* owner only: bytes at the last sample */
	int64_t		 rate_at_us;	/* owner only: when it was taken */
};

struct stream;

/* One end of a TCP connection, comparable with memcmp (IPv4-mapped IPv6
 * addresses as IPv4). */
struct endpoint {
	uint8_t		 family;	/* 0: not known, 4, 6 */
	uint8_t		 pad;
	uint16_t	 port;
	uint8_t		 addr[16];
};

/* What a worker may ask of a stream of any kind, on its own thread. */
/* Why a producer's connection ended badly (a /metrics label). */
enum fail_reason {
	FAIL_CONNECT,		/* it never came up */
	FAIL_LOST,		/* it broke while streaming */
	FAIL_PROTOCOL,		/* the server said something else */
};
#define FAIL_REASONS	3

/*
 * What /metrics says of a group of streams: server streams by mode,
 * producers by configured name ("" for every ad-hoc one), so that no
 * label grows with every connection.  Ended streams add theirs once.
 */
struct metric_acc {
	char		 name[WSFLOW_NAME_MAX];
	uint64_t	 live;		/* streams running now */
	uint64_t	 streams;	/* ever */
	uint64_t	 bytes, digests, verified, mismatched, reconnects;
	uint64_t	 fail[FAIL_REASONS];
	struct hist_snap latency, connect;
};

struct stream_ops {
	/* End it politely: 1001 when the daemon is going away. */
	void	(*stop)(struct stream *, bool going_away);
	/* Once a second: rates, timeouts, progress. */
	void	(*tick)(struct stream *, int64_t now_us);
	/* The worker's loop is gone with the stream still there: free it
	 * without touching lws.  NULL: lws frees it with its socket. */
	void	(*drop)(struct stream *);
};

struct stream {
	TAILQ_ENTRY(stream) entry;	/* registry, under its lock */
	TAILQ_ENTRY(stream) wentry;	/* the owning worker's list */
	struct worker	*owner;
	const struct stream_ops *ops;
	uint64_t	 id;
	enum stream_role role;
	enum wsflow_mode mode;
	_Atomic(const char *) state;	/* short word: "open", "paused", ... */
	char		 name[WSFLOW_NAME_MAX];
	bool		 adhoc;		/* a producer not in the configuration */
	char		 peer[256];	/* address:port or URL */
	int64_t		 started_us;	/* lws_now_usecs() */
	struct stream_stats st;
	atomic_uint	 digest_seq;	/* seqlock over last_digest */
	char		 last_digest[2 * 64 + 1];	/* hex, EVP_MAX_MD_SIZE */
	/*
	 * How it ended, set by its owner (stream_set_end) before it leaves
	 * the registry, and read only then: the history keeps a copy.
	 */
	const char	*end_state;	/* STREAM_FINISHED, ... or NULL */
	char		 end_reason[32];	/* short words */
	/* Producers: why it failed last (show's `error`, "" while
	 * healthy), how often it retried, when it tries next. */
	atomic_uint	 error_seq;	/* seqlock over error */
	char		 error[256];
	counter_t	 reconnects;	/* retries after a failure or a drop */
	counter_t	 next_attempt_us; /* lws_now_usecs(), 0: none due */
	/*
	 * A producer connected to a listener of this same daemon, and the
	 * server stream that is its other end: each has the other's id in
	 * link_id (0: not one of ours, or not known).  A producer whose URL
	 * port is one of the listeners' waits on the registry's unlinked
	 * list from its request on, until the server stream that reads the
	 * request finds it by the connection's two ends (under the lock).
	 */
	TAILQ_ENTRY(stream) lentry;	/* reg->unlinked, under its lock */
	bool		 unlinked;	/* on it */
	struct endpoint	 ep_local, ep_remote;	/* under the lock */
	counter_t	 link_id;
	counter_t	 local_port;	/* producers: the connection's own */
};

/* The states of an ended stream. */
#define STREAM_FINISHED	"finished"	/* reached its bytes/duration limit */
#define STREAM_FAILED	"failed"	/* an error ended it */
#define STREAM_STOPPED	"stopped"	/* a user, a stop, a shutdown */

/* An ended stream as the history keeps it: a copy, nothing shared. */
struct stream_record {
	uint64_t	 id;
	uint64_t	 seq;		/* order of ending, from 1 */
	enum stream_role role;
	enum wsflow_mode mode;
	const char	*state;		/* STREAM_FINISHED, ... */
	char		 end_reason[32];
	char		 error[256];
	char		 name[WSFLOW_NAME_MAX];
	char		 peer[256];
	int64_t		 started_us, ended_us;
	uint64_t	 bytes, messages, digests, verified, mismatched;
	uint64_t	 bp_pauses, bp_usec, latency_last_us, latency_max_us;
	uint64_t	 reconnects;
	uint64_t	 link_id;	/* see struct stream */
	uint64_t	 local_port;	/* see struct stream */
	uint64_t	 connect_tcp_us, connect_tls_us, connect_upgrade_us;
	struct hist_snap latency;
	char		 last_digest[2 * 64 + 1];
};

TAILQ_HEAD(stream_list, stream);

#define LINK_BUCKETS	256

/* The counters of one worker (its only writer), summed by totals_get. */
struct totals_shard {
	counter_t	 connections;		/* open server streams */
	counter_t	 connections_total;
	counter_t	 bytes_received;
	counter_t	 digests_sent;
	counter_t	 running;		/* producers */
	counter_t	 bytes_sent;
	counter_t	 digests_received;
	counter_t	 digests_verified;
	counter_t	 digest_mismatches;
	counter_t	 producers_total;	/* producers ever started */
};

/* A plain snapshot of the totals. */
struct totals {
	uint64_t	 sockets, refused;
	uint64_t	 connections, connections_total, bytes_received,
			 digests_sent;
	uint64_t	 running, bytes_sent, digests_received,
			 digests_verified, digest_mismatches;
	uint64_t	 producers_total;
};

struct registry {
	pthread_mutex_t	 lock;		/* streams, nstreams */
	struct stream_list streams;	/* in id order */
	unsigned long	 nstreams;
	/* Producers: see stream.link_id; by their local port. */
	struct stream_list unlinked[LINK_BUCKETS];
	atomic_uint_fast64_t next_id;
	/* Sockets of the listeners, whatever became of them. */
	atomic_uint_fast64_t sockets;	/* adopted by a worker, not closed */
	atomic_uint_fast64_t pending;	/* accepted, not yet adopted */
	counter_t	 refused;	/* over max_connections (main thread) */
	struct totals_shard **shards;	/* one per worker */
	unsigned	 nshards;
	/* Ended streams under lock: the newest of each role, a ring each,
	 * so that a busy server's closes do not push out the ends of the
	 * producers a user (wsflowctl run) is following. */
	struct history_ring {
		struct stream_record *rec;
		unsigned	 cap, len, next;
	}		 hist[2];	/* [ROLE_SERVER], [ROLE_PRODUCER] */
	unsigned	 hist_len;	/* in both */
	uint64_t	 hist_seq;	/* records ever made */
	/* Ended streams' figures for /metrics, under lock. */
	struct metric_acc server_acc[4];	/* by enum wsflow_mode */
	struct metric_acc *prod_acc;		/* by name */
	unsigned	 nprod_acc;
};

void		 registry_init(struct registry *);
void		 registry_free(struct registry *);
uint64_t	 stream_new_id(struct registry *);
uint64_t	 stream_new_ids(struct registry *, uint64_t n);
void		 stream_publish_locked(struct registry *, struct worker *owner,
		    struct stream *, uint64_t id, enum stream_role,
		    enum wsflow_mode, const struct stream_ops *);
void		 stream_publish(struct registry *, struct worker *owner,
		    struct stream *, uint64_t id, enum stream_role,
		    enum wsflow_mode, const struct stream_ops *);
void		 stream_withdraw(struct registry *, struct stream *);
/* A producer's connection (fd), its request about to go: a server
 * stream of this daemon may now find it (stream_link_find). */
void		 stream_link_offer(struct registry *, struct stream *, int fd);
/* That connection is gone: its 4-tuple may be another's next. */
void		 stream_link_drop(struct registry *, struct stream *);
/* A server stream's connection (fd), published: link it to the
 * producer at its other end when that is one of ours. */
void		 stream_link_find(struct registry *, struct stream *, int fd);
struct stream	*stream_find_locked(struct registry *, const char *id_or_name);
struct stream	*stream_by_id(struct stream_list *, uint64_t id);
unsigned long	 stream_count(struct registry *);
void		 totals_get(struct registry *, struct totals *);

void		 stream_set_state(struct stream *, const char *);
const char	*stream_state(const struct stream *);
void		 stream_set_digest(struct stream *, const char *hex,
		    size_t len);
void		 stream_get_digest(const struct stream *, char *out,
		    size_t outlen);
void		 stream_set_error(struct stream *, const char *);
void		 stream_get_error(const struct stream *, char *out,
		    size_t outlen);
void		 stream_sample_rate(struct stream *, int64_t now_us);
void		 stream_set_end(struct stream *, const char *state,
		    const char *reason, const char *error);
int		 registry_set_history(struct registry *, unsigned n);
/* The i-th kept record, oldest first; the caller holds the lock. */
const struct stream_record *history_at_locked(const struct registry *,
		    unsigned i);
/* The newest ended stream of this id or name, under the lock. */
const struct stream_record *history_find_locked(const struct registry *,
		    const char *id_or_name);
uint64_t	 stream_avg_rate(const struct stream *, int64_t now_us);
/* Every group's figures, ended and live: *prod malloc'd (nprod). */
int		 metrics_collect(struct registry *, struct metric_acc server[4],
		    struct metric_acc **prod, unsigned *nprod);
/* What the control protocol says of a live or an ended stream (the
 * caller holds the lock for a record; a stream is read lock-free). */
void		 stream_ctl_info(const struct stream *, struct ctl_stream *,
		    int64_t now);
void		 record_ctl_info(const struct stream_record *,
		    struct ctl_stream *);

#endif
