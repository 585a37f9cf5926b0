/*
 * stream.c — the registry of live streams: ids, lookup, rates.
 */
#include <stdlib.h>
#include <string.h>

#include "wsflowd.h"

void
stream_register(struct wsflowd *wd, struct stream *s, enum stream_role role,
    enum wsflow_mode mode)
{
	s->id = ++wd->next_stream_id;
	s->role = role;
	s->mode = mode;
	s->started_us = lws_now_usecs();
	s->st.rate_at_us = s->started_us;
	TAILQ_INSERT_TAIL(&wd->streams, s, entry);
}

void
stream_unregister(struct wsflowd *wd, struct stream *s)
{
	if (s->id == 0)
		return;
	TAILQ_REMOVE(&wd->streams, s, entry);
	s->id = 0;
}

/* By decimal id, else by name (a name never starts with a digit). */
struct stream *
stream_find(struct wsflowd *wd, const char *key)
{
	struct stream *s;
	char *end;
	unsigned long long id;

	id = strtoull(key, &end, 10);
	TAILQ_FOREACH(s, &wd->streams, entry) {
		if (*key != '\0' && *end == '\0' && s->id == id)
			return s;
		if (strcmp(s->name, key) == 0)
			return s;
	}
	return NULL;
}

/* Current rate over the interval since the previous sample. */
void
stream_sample_rate(struct stream *s, int64_t now_us)
{
	int64_t dt = now_us - s->st.rate_at_us;

	if (dt <= 0)
		return;
	s->st.bytes_per_sec = (s->st.bytes - s->st.rate_bytes) *
	    (uint64_t)LWS_US_PER_SEC / (uint64_t)dt;
	s->st.rate_bytes = s->st.bytes;
	s->st.rate_at_us = now_us;
}

uint64_t
stream_avg_rate(const struct stream *s, int64_t now_us)
{
	int64_t dt = now_us - s->started_us;

	return dt > 0 ? (uint64_t)((double)s->st.bytes * LWS_US_PER_SEC / dt)
	    : 0;
}
