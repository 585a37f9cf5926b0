/*
 * stream.h — what every live stream has in common, server connection or
 * producer: identity, counters, and its place in the daemon's registry.
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
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"

struct wsflowd;
struct worker;

typedef _Atomic uint64_t counter_t;

#define STAT_GET(x)	atomic_load_explicit(&(x), memory_order_relaxed)
#define STAT_SET(x, v)	atomic_store_explicit(&(x), (uint64_t)(v),	\
			    memory_order_relaxed)
/* Single writer: no read-modify-write instruction needed. */
#define STAT_ADD(x, n)	STAT_SET(x, STAT_GET(x) + (uint64_t)(n))

enum stream_role {
	ROLE_SERVER,
	ROLE_PRODUCER,
};

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
	counter_t	 bytes_per_sec;	/* over the last sample interval */
	uint64_t	 rate_bytes;	/* owner only: bytes at the last sample */
	int64_t		 rate_at_us;	/* owner only: when it was taken */
};

struct stream {
	TAILQ_ENTRY(stream) entry;	/* registry, under its lock */
	TAILQ_ENTRY(stream) wentry;	/* the owning worker's list */
	struct worker	*owner;
	uint64_t	 id;
	enum stream_role role;
	enum wsflow_mode mode;
	_Atomic(const char *) state;	/* short word: "open", "paused", ... */
	char		 name[WSFLOW_NAME_MAX];
	char		 peer[256];	/* address:port or URL */
	int64_t		 started_us;	/* lws_now_usecs() */
	struct stream_stats st;
	atomic_uint	 digest_seq;	/* seqlock over last_digest */
	char		 last_digest[2 * 64 + 1];	/* hex, EVP_MAX_MD_SIZE */
};

TAILQ_HEAD(stream_list, stream);

void		 stream_publish_locked(struct wsflowd *, struct worker *owner,
		    struct stream *, uint64_t id, enum stream_role,
		    enum wsflow_mode);
void		 stream_attach(struct worker *, struct stream *);
void		 stream_register(struct worker *, struct stream *, uint64_t id,
		    enum stream_role, enum wsflow_mode);
void		 stream_unregister(struct worker *, struct stream *);
struct stream	*stream_find_locked(struct wsflowd *, const char *id_or_name);
struct stream	*stream_by_id(struct stream_list *, uint64_t id);
void		 stream_set_state(struct stream *, const char *);
const char	*stream_state(const struct stream *);
void		 stream_set_digest(struct stream *, const char *hex,
		    size_t len);
void		 stream_get_digest(const struct stream *, char *out,
		    size_t outlen);
void		 stream_sample_rate(struct stream *, int64_t now_us);
uint64_t	 stream_avg_rate(const struct stream *, int64_t now_us);

#endif
