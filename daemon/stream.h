/*
 * stream.h — what every live stream has in common, server connection or
 * producer: identity, counters, and its place in the daemon's registry.
 *
 * Counters are written only by the loop thread that owns the stream and
 * are plain aligned 64-bit words, so a reader never sees a torn value.
 */
#ifndef WSFLOW_STREAM_H
#define WSFLOW_STREAM_H

#include <sys/queue.h>
#include <stdint.h>

#include "config.h"

struct wsflowd;

enum stream_role {
	ROLE_SERVER,
	ROLE_PRODUCER,
};

struct stream_stats {
	uint64_t	 bytes;		/* received (server) / sent (producer) */
	uint64_t	 messages;	/* messages completed */
	uint64_t	 digests;	/* sent (server) / received (producer) */
	uint64_t	 verified;	/* producer: digests that matched */
	uint64_t	 mismatched;	/* producer: digests that did not */
	uint64_t	 bp_pauses;	/* times the peer held us back */
	uint64_t	 bp_usec;	/* time spent held back */
	uint64_t	 latency_last_us; /* last byte of a batch -> digest */
	uint64_t	 latency_max_us;
	uint64_t	 rate_bytes;	/* bytes at the last rate sample */
	int64_t		 rate_at_us;	/* when that sample was taken */
	uint64_t	 bytes_per_sec;	/* over the last sample interval */
};

struct stream {
	TAILQ_ENTRY(stream) entry;
	uint64_t	 id;
	enum stream_role role;
	enum wsflow_mode mode;
	const char	*state;		/* short word: "open", "paused", ... */
	char		 name[WSFLOW_NAME_MAX];
	char		 peer[256];	/* address:port or URL */
	int64_t		 started_us;	/* lws_now_usecs() */
	struct stream_stats st;
	char		 last_digest[2 * 64 + 1];	/* hex, EVP_MAX_MD_SIZE */
};

TAILQ_HEAD(stream_list, stream);

void		 stream_register(struct wsflowd *, struct stream *,
		    enum stream_role, enum wsflow_mode);
void		 stream_unregister(struct wsflowd *, struct stream *);
struct stream	*stream_find(struct wsflowd *, const char *id_or_name);
void		 stream_sample_rate(struct stream *, int64_t now_us);
uint64_t	 stream_avg_rate(const struct stream *, int64_t now_us);

#endif
