/*
 * stream.c — the registry of live streams: ids, lookup, rates, and the
 * few fields that another thread may read while the owner writes.
 */
#include <stdlib.h>
#include <string.h>

#include "wsflowd.h"

/*
 * Enter a stream in the registry; the caller holds reg_lock.  From here
 * the control socket lists it, and asks `owner` to stop it.
 */
void
stream_publish_locked(struct wsflowd *wd, struct worker *owner,
    struct stream *s, uint64_t id, enum stream_role role,
    enum wsflow_mode mode)
{
	struct stream *after;

	s->owner = owner;
	s->id = id != 0 ? id : stream_new_id(wd);
	s->role = role;
	s->mode = mode;
	s->started_us = lws_now_usecs();
	s->st.rate_at_us = s->started_us;
	if (stream_state(s) == NULL)
		stream_set_state(s, "open");
	/*
	 * In id order, so that a listing can resume after the last id it
	 * sent.  A producer's id is taken when it is asked for and it may
	 * register after younger streams: look back from the tail.
	 */
	after = TAILQ_LAST(&wd->streams, stream_list);
	while (after != NULL && after->id > s->id)
		after = TAILQ_PREV(after, stream_list, entry);
	if (after == NULL)
		TAILQ_INSERT_HEAD(&wd->streams, s, entry);
	else
		TAILQ_INSERT_AFTER(&wd->streams, after, s, entry);
	wd->nstreams++;
}

/* The owner's side: its own list, walked without a lock. */
void
stream_attach(struct worker *w, struct stream *s)
{
	TAILQ_INSERT_TAIL(&w->streams, s, wentry);
}

/* A stream born in a worker (an accepted connection). */
void
stream_register(struct worker *w, struct stream *s, uint64_t id,
    enum stream_role role, enum wsflow_mode mode)
{
	struct wsflowd *wd = w->wd;

	pthread_mutex_lock(&wd->reg_lock);
	stream_publish_locked(wd, w, s, id, role, mode);
	pthread_mutex_unlock(&wd->reg_lock);
	stream_attach(w, s);
}

void
stream_unregister(struct worker *w, struct stream *s)
{
	struct wsflowd *wd = w->wd;

	if (s->id == 0)
		return;
	TAILQ_REMOVE(&w->streams, s, wentry);
	pthread_mutex_lock(&wd->reg_lock);
	TAILQ_REMOVE(&wd->streams, s, entry);
	wd->nstreams--;
	pthread_mutex_unlock(&wd->reg_lock);
	s->id = 0;
}

/* By decimal id, else by name (a name never starts with a digit). */
struct stream *
stream_find_locked(struct wsflowd *wd, const char *key)
{
	struct stream *s;
	char *end;
	unsigned long long id;

	if (*key == '\0')		/* server streams have no name */
		return NULL;
	id = strtoull(key, &end, 10);
	TAILQ_FOREACH(s, &wd->streams, entry) {
		if (*key != '\0' && *end == '\0' && s->id == id)
			return s;
		if (strcmp(s->name, key) == 0)
			return s;
	}
	return NULL;
}

/* A worker's own stream by id; no lock, the list is the worker's. */
struct stream *
stream_by_id(struct stream_list *list, uint64_t id)
{
	struct stream *s;

	TAILQ_FOREACH(s, list, wentry)
		if (s->id == id)
			return s;
	return NULL;
}

void
stream_set_state(struct stream *s, const char *state)
{
	atomic_store_explicit(&s->state, state, memory_order_relaxed);
}

const char *
stream_state(const struct stream *s)
{
	return atomic_load_explicit(&s->state, memory_order_relaxed);
}

/* Seqlock writer: odd while writing. */
void
stream_set_digest(struct stream *s, const char *hex, size_t len)
{
	unsigned seq = atomic_load_explicit(&s->digest_seq,
	    memory_order_relaxed);

	if (len >= sizeof(s->last_digest))
		len = sizeof(s->last_digest) - 1;
	atomic_store_explicit(&s->digest_seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	memcpy(s->last_digest, hex, len);
	s->last_digest[len] = '\0';
	atomic_store_explicit(&s->digest_seq, seq + 2, memory_order_release);
}

/* Seqlock reader: retry while a write was under way. */
void
stream_get_digest(const struct stream *s, char *out, size_t outlen)
{
	unsigned before, after;

	do {
		before = atomic_load_explicit(&s->digest_seq,
		    memory_order_acquire);
		memcpy(out, s->last_digest, outlen < sizeof(s->last_digest) ?
		    outlen : sizeof(s->last_digest));
		atomic_thread_fence(memory_order_acquire);
		after = atomic_load_explicit(&s->digest_seq,
		    memory_order_relaxed);
	} while ((before & 1) || before != after);
	out[outlen - 1] = '\0';
}

/* Current rate over the interval since the previous sample (owner). */
void
stream_sample_rate(struct stream *s, int64_t now_us)
{
	int64_t dt = now_us - s->st.rate_at_us;
	uint64_t bytes = STAT_GET(s->st.bytes);

	if (dt <= 0)
		return;
	STAT_SET(s->st.bytes_per_sec, (bytes - s->st.rate_bytes) *
	    (uint64_t)LWS_US_PER_SEC / (uint64_t)dt);
	s->st.rate_bytes = bytes;
	s->st.rate_at_us = now_us;
}

uint64_t
stream_avg_rate(const struct stream *s, int64_t now_us)
{
	int64_t dt = now_us - s->started_us;

	return dt > 0 ? (uint64_t)((double)STAT_GET(s->st.bytes) *
	    LWS_US_PER_SEC / dt) : 0;
}
