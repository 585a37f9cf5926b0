/*
 * stream.c — the registry of live streams (ids, lookup, totals), and the
 * few fields of a stream that another thread may read while the owner
 * writes; the history of ended streams, recorded as each one leaves.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "ctl_proto.h"
#include "stream.h"

void
registry_init(struct registry *reg)
{
	memset(reg, 0, sizeof(*reg));
	pthread_mutex_init(&reg->lock, NULL);
	TAILQ_INIT(&reg->streams);
	for (unsigned i = 0; i < LINK_BUCKETS; i++)
		TAILQ_INIT(&reg->unlinked[i]);
}

void
registry_free(struct registry *reg)
{
	free(reg->shards);
	reg->shards = NULL;
	for (unsigned i = 0; i < 2; i++) {
		free(reg->hist[i].rec);
		memset(&reg->hist[i], 0, sizeof(reg->hist[i]));
	}
	reg->hist_len = 0;
	free(reg->prod_acc);
	reg->prod_acc = NULL;
	reg->nprod_acc = 0;
	pthread_mutex_destroy(&reg->lock);
}

uint64_t
stream_new_id(struct registry *reg)
{
	return atomic_fetch_add(&reg->next_id, 1) + 1;
}

/* n ids in a row (an entry's parallel streams): the first of them. */
uint64_t
stream_new_ids(struct registry *reg, uint64_t n)
{
	return atomic_fetch_add(&reg->next_id, n > 0 ? n : 1) + 1;
}

/*
 * Enter a stream in the registry; the caller holds the lock.  From here
 * the control socket lists it, and asks `owner` to stop it.
 */
void
stream_publish_locked(struct registry *reg, struct worker *owner,
    struct stream *s, uint64_t id, enum stream_role role,
    enum wsflow_mode mode, const struct stream_ops *ops)
{
	struct stream *after;

	s->owner = owner;
	s->ops = ops;
	s->id = id != 0 ? id : stream_new_id(reg);
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
	after = TAILQ_LAST(&reg->streams, stream_list);
	while (after != NULL && after->id > s->id)
		after = TAILQ_PREV(after, stream_list, entry);
	if (after == NULL)
		TAILQ_INSERT_HEAD(&reg->streams, s, entry);
	else
		TAILQ_INSERT_AFTER(&reg->streams, after, s, entry);
	reg->nstreams++;
}

void
stream_publish(struct registry *reg, struct worker *owner, struct stream *s,
    uint64_t id, enum stream_role role, enum wsflow_mode mode,
    const struct stream_ops *ops)
{
	pthread_mutex_lock(&reg->lock);
	stream_publish_locked(reg, owner, s, id, role, mode, ops);
	pthread_mutex_unlock(&reg->lock);
}

/* Copy what a user may ask about an ended stream; under the lock. */
static void
history_record_locked(struct registry *reg, const struct stream *s)
{
	struct history_ring *ring = &reg->hist[s->role == ROLE_PRODUCER];
	struct stream_record *r;

	reg->hist_seq++;
	if (ring->cap == 0)
		return;
	r = &ring->rec[ring->next];
	ring->next = (ring->next + 1) % ring->cap;
	if (ring->len < ring->cap) {
		ring->len++;
		reg->hist_len++;
	}
	memset(r, 0, sizeof(*r));
	r->id = s->id;
	r->seq = reg->hist_seq;
	r->role = s->role;
	r->mode = s->mode;
	/* Nobody said: the daemon dropped it on its way out. */
	r->state = s->end_state != NULL ? s->end_state : STREAM_STOPPED;
	snprintf(r->end_reason, sizeof(r->end_reason), "%s",
	    s->end_state != NULL ? s->end_reason : "shutdown");
	stream_get_error(s, r->error, sizeof(r->error));
	snprintf(r->name, sizeof(r->name), "%s", s->name);
	snprintf(r->peer, sizeof(r->peer), "%s", s->peer);
	r->started_us = s->started_us;
	r->ended_us = lws_now_usecs();
	r->bytes = STAT_GET(s->st.bytes);
	r->messages = STAT_GET(s->st.messages);
	r->digests = STAT_GET(s->st.digests);
	r->verified = STAT_GET(s->st.verified);
	r->mismatched = STAT_GET(s->st.mismatched);
	r->bp_pauses = STAT_GET(s->st.bp_pauses);
	r->bp_usec = STAT_GET(s->st.bp_usec);
	r->latency_last_us = STAT_GET(s->st.latency_last_us);
	r->latency_max_us = STAT_GET(s->st.latency_max_us);
	r->reconnects = STAT_GET(s->reconnects);
	r->link_id = STAT_GET(s->link_id);
	r->local_port = STAT_GET(s->local_port);
	r->connect_tcp_us = STAT_GET(s->st.connect_tcp_us);
	r->connect_tls_us = STAT_GET(s->st.connect_tls_us);
	r->connect_upgrade_us = STAT_GET(s->st.connect_upgrade_us);
	hist_read(&s->st.latency, &r->latency);
	stream_get_digest(s, r->last_digest, sizeof(r->last_digest));
}

/* A ring's i-th record, oldest first. */
static struct stream_record *
ring_at(const struct history_ring *ring, unsigned i)
{
	return &ring->rec[(ring->next + ring->cap - ring->len + i) %
	    ring->cap];
}

/*
 * Keep the newest n ended streams of each role (n = 0: none).  Main
 * thread, at start and reload; records are copied, oldest dropped first.
 */
int
registry_set_history(struct registry *reg, unsigned n)
{
	struct stream_record *h[2] = { NULL, NULL };

	for (unsigned k = 0; k < 2 && n > 0; k++)
		if ((h[k] = calloc(n, sizeof(*h[k]))) == NULL) {
			free(h[0]);
			return -1;
		}
	pthread_mutex_lock(&reg->lock);
	reg->hist_len = 0;
	for (unsigned k = 0; k < 2; k++) {
		struct history_ring *ring = &reg->hist[k];
		unsigned keep = ring->len < n ? ring->len : n;

		for (unsigned i = 0; i < keep; i++)
			h[k][i] = *ring_at(ring, ring->len - keep + i);
		free(ring->rec);
		ring->rec = h[k];
		ring->cap = n;
		ring->len = keep;
		ring->next = n > 0 ? keep % n : 0;
		reg->hist_len += keep;
	}
	pthread_mutex_unlock(&reg->lock);
	return 0;
}

/* The i-th of both rings together, oldest first (by the order of ending). */
const struct stream_record *
history_at_locked(const struct registry *reg, unsigned i)
{
	const struct history_ring *a = &reg->hist[0], *b = &reg->hist[1];
	unsigned ia = 0, ib = 0;

	if (i >= reg->hist_len)
		return NULL;
	for (;;) {
		const struct stream_record *ra = ia < a->len ?
		    ring_at(a, ia) : NULL, *rb = ib < b->len ? ring_at(b, ib) :
		    NULL;
		const struct stream_record *r = rb == NULL || (ra != NULL &&
		    ra->seq < rb->seq) ? ra : rb;

		if (i-- == 0)
			return r;
		if (r == ra)
			ia++;
		else
			ib++;
	}
}

/* Newest first: a reused name means its latest run. */
const struct stream_record *
history_find_locked(const struct registry *reg, const char *key)
{
	const struct stream_record *r;
	char *end;
	unsigned long long id;

	if (*key == '\0')
		return NULL;
	id = strtoull(key, &end, 10);
	for (unsigned i = reg->hist_len; i-- > 0;) {
		r = history_at_locked(reg, i);
		if ((*end == '\0' && r->id == id) || strcmp(r->name, key) == 0)
			return r;
	}
	return NULL;
}

/* One stream's figures into its group's. */
static void
metric_add(struct metric_acc *a, const struct stream *s)
{
	struct hist_snap h;

	a->streams++;
	a->bytes += STAT_GET(s->st.bytes);
	a->digests += STAT_GET(s->st.digests);
	a->verified += STAT_GET(s->st.verified);
	a->mismatched += STAT_GET(s->st.mismatched);
	a->reconnects += STAT_GET(s->reconnects);
	for (unsigned i = 0; i < FAIL_REASONS; i++)
		a->fail[i] += STAT_GET(s->st.fail[i]);
	hist_read(&s->st.latency, &h);
	hist_merge(&a->latency, &h);
	hist_read(&s->st.connect, &h);
	hist_merge(&a->connect, &h);
}

/* The group of s among accs (n of them), or NULL. */
static struct metric_acc *
metric_find(struct metric_acc *accs, unsigned n, const struct stream *s)
{
	const char *name = s->adhoc ? "" : s->name;

	for (unsigned i = 0; i < n; i++)
		if (strcmp(accs[i].name, name) == 0)
			return &accs[i];
	return NULL;
}

/* A new group for s at the end of *accs; NULL when out of memory. */
static struct metric_acc *
metric_new(struct metric_acc **accs, unsigned *n, const struct stream *s)
{
	struct metric_acc *a = reallocarray(*accs, *n + 1, sizeof(**accs));

	if (a == NULL)
		return NULL;
	*accs = a;
	a = &a[(*n)++];
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", s->adhoc ? "" : s->name);
	return a;
}

static void
metric_record_locked(struct registry *reg, const struct stream *s)
{
	struct metric_acc *a;

	if (s->role == ROLE_SERVER) {
		if ((unsigned)s->mode < 4)
			metric_add(&reg->server_acc[s->mode], s);
		return;
	}
	if ((a = metric_find(reg->prod_acc, reg->nprod_acc, s)) != NULL ||
	    (a = metric_new(&reg->prod_acc, &reg->nprod_acc, s)) != NULL)
		metric_add(a, s);
}

int
metrics_collect(struct registry *reg, struct metric_acc server[4],
    struct metric_acc **prod, unsigned *nprod)
{
	struct metric_acc *a;
	struct stream *s;
	int rc = 0;

	pthread_mutex_lock(&reg->lock);
	memcpy(server, reg->server_acc, sizeof(reg->server_acc));
	*nprod = reg->nprod_acc;
	if ((*prod = calloc(reg->nprod_acc + 1, sizeof(**prod))) == NULL)
		rc = -1;
	else if (reg->nprod_acc > 0)
		memcpy(*prod, reg->prod_acc, reg->nprod_acc *
		    sizeof(**prod));
	TAILQ_FOREACH(s, &reg->streams, entry) {
		if (rc == -1)
			break;
		if (s->role == ROLE_SERVER)
			a = (unsigned)s->mode < 4 ? &server[s->mode] : NULL;
		else if ((a = metric_find(*prod, *nprod, s)) == NULL &&
		    (a = metric_new(prod, nprod, s)) == NULL)
			rc = -1;
		if (a != NULL) {
			metric_add(a, s);
			a->live++;
		}
	}
	pthread_mutex_unlock(&reg->lock);
	if (rc == -1) {
		free(*prod);
		*prod = NULL;
		*nprod = 0;
	}
	return rc;
}

static struct stream_list *
link_bucket(struct registry *reg, const struct endpoint *producer_local)
{
	return &reg->unlinked[producer_local->port % LINK_BUCKETS];
}

static void
unlink_locked(struct registry *reg, struct stream *s)
{
	if (s->unlinked) {
		TAILQ_REMOVE(link_bucket(reg, &s->ep_local), s, lentry);
		s->unlinked = false;
	}
}

/* Gone from the registry, into the history: the owner, once. */
void
stream_withdraw(struct registry *reg, struct stream *s)
{
	pthread_mutex_lock(&reg->lock);
	unlink_locked(reg, s);
	history_record_locked(reg, s);
	metric_record_locked(reg, s);
	TAILQ_REMOVE(&reg->streams, s, entry);
	reg->nstreams--;
	pthread_mutex_unlock(&reg->lock);
}

/* One end of a socket: getsockname (local) or getpeername; 0 or -1. */
static int
endpoint_get(int fd, bool local, struct endpoint *e)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };

	memset(e, 0, sizeof(*e));
	if ((local ? getsockname(fd, (struct sockaddr *)&ss, &sl) :
	    getpeername(fd, (struct sockaddr *)&ss, &sl)) == -1)
		return -1;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;

		e->family = 4;
		e->port = ntohs(in->sin_port);
		memcpy(e->addr, &in->sin_addr, 4);
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)&ss;
		const uint8_t *a = in6->sin6_addr.s6_addr;

		e->port = ntohs(in6->sin6_port);
		if (memcmp(a, mapped, sizeof(mapped)) == 0) {
			e->family = 4;
			memcpy(e->addr, a + 12, 4);
		} else {
			e->family = 6;
			memcpy(e->addr, a, 16);
		}
	} else
		return -1;
	return 0;
}

void
stream_link_offer(struct registry *reg, struct stream *s, int fd)
{
	struct endpoint l, r;
	bool ok;

	ok = endpoint_get(fd, true, &l) == 0 && endpoint_get(fd, false,
	    &r) == 0;
	pthread_mutex_lock(&reg->lock);
	/* A new connection: the last one's server stream is not its end. */
	STAT_SET(s->link_id, 0);
	unlink_locked(reg, s);
	if (ok) {
		s->ep_local = l;
		s->ep_remote = r;
		TAILQ_INSERT_TAIL(link_bucket(reg, &l), s, lentry);
		s->unlinked = true;
	}
	pthread_mutex_unlock(&reg->lock);
}

void
stream_link_drop(struct registry *reg, struct stream *s)
{
	pthread_mutex_lock(&reg->lock);
	unlink_locked(reg, s);
	pthread_mutex_unlock(&reg->lock);
}

void
stream_link_find(struct registry *reg, struct stream *s, int fd)
{
	struct endpoint l, r;
	struct stream_list *b;
	struct stream *p;

	if (endpoint_get(fd, true, &l) == -1 || endpoint_get(fd, false,
	    &r) == -1)
		return;
	pthread_mutex_lock(&reg->lock);
	b = link_bucket(reg, &r);	/* the producer's local end is our peer */
	/* A 4-tuple names one connection on this host: its two ends. */
	TAILQ_FOREACH(p, b, lentry)
		if (memcmp(&p->ep_local, &r, sizeof(r)) == 0 &&
		    memcmp(&p->ep_remote, &l, sizeof(l)) == 0)
			break;
	if (p != NULL) {
		TAILQ_REMOVE(b, p, lentry);
		p->unlinked = false;
		STAT_SET(p->link_id, s->id);
		STAT_SET(s->link_id, p->id);
	}
	pthread_mutex_unlock(&reg->lock);
}

unsigned long
stream_count(struct registry *reg)
{
	unsigned long n;

	pthread_mutex_lock(&reg->lock);
	n = reg->nstreams;
	pthread_mutex_unlock(&reg->lock);
	return n;
}

/* By decimal id, else by name (a name never starts with a digit). */
struct stream *
stream_find_locked(struct registry *reg, const char *key)
{
	struct stream *s;
	char *end;
	unsigned long long id;

	if (*key == '\0')		/* server streams have no name */
		return NULL;
	id = strtoull(key, &end, 10);
	TAILQ_FOREACH(s, &reg->streams, entry) {
		if (*end == '\0' && s->id == id)
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
totals_get(struct registry *reg, struct totals *t)
{
	memset(t, 0, sizeof(*t));
	t->sockets = atomic_load(&reg->sockets);
	t->refused = STAT_GET(reg->refused);
	for (unsigned i = 0; i < reg->nshards; i++) {
		const struct totals_shard *sh = reg->shards[i];

		t->connections += STAT_GET(sh->connections);
		t->connections_total += STAT_GET(sh->connections_total);
		t->bytes_received += STAT_GET(sh->bytes_received);
		t->digests_sent += STAT_GET(sh->digests_sent);
		t->running += STAT_GET(sh->running);
		t->bytes_sent += STAT_GET(sh->bytes_sent);
		t->digests_received += STAT_GET(sh->digests_received);
		t->digests_verified += STAT_GET(sh->digests_verified);
		t->digest_mismatches += STAT_GET(sh->digest_mismatches);
		t->producers_total += STAT_GET(sh->producers_total);
	}
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

/*
 * How the stream ends; its owner, before it leaves.  The first word
 * stands (a protocol error, then the close it brings, is a failure).
 */
void
stream_set_end(struct stream *s, const char *state, const char *reason,
    const char *error)
{
	if (s->end_state != NULL)
		return;
	s->end_state = state;
	snprintf(s->end_reason, sizeof(s->end_reason), "%s", reason);
	if (error != NULL && s->error[0] == '\0')
		stream_set_error(s, error);
}

/* Seqlock writer, as stream_set_digest: "" clears it. */
void
stream_set_error(struct stream *s, const char *text)
{
	unsigned seq = atomic_load_explicit(&s->error_seq,
	    memory_order_relaxed);
	size_t len = strlen(text);

	if (len >= sizeof(s->error))
		len = sizeof(s->error) - 1;
	atomic_store_explicit(&s->error_seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	memcpy(s->error, text, len);
	s->error[len] = '\0';
	atomic_store_explicit(&s->error_seq, seq + 2, memory_order_release);
}

void
stream_get_error(const struct stream *s, char *out, size_t outlen)
{
	unsigned before, after;

	do {
		before = atomic_load_explicit(&s->error_seq,
		    memory_order_acquire);
		memcpy(out, s->error, outlen < sizeof(s->error) ? outlen :
		    sizeof(s->error));
		atomic_thread_fence(memory_order_acquire);
		after = atomic_load_explicit(&s->error_seq,
		    memory_order_relaxed);
	} while ((before & 1) || before != after);
	out[outlen - 1] = '\0';
}

/* A live stream as the control protocol (and /live) shows it; any thread. */
void
stream_ctl_info(const struct stream *s, struct ctl_stream *o, int64_t now)
{
	memset(o, 0, sizeof(*o));
	o->id = s->id;
	o->role = s->role;
	o->mode = s->mode;
	ctl_strlcpy(o->state, stream_state(s) ? stream_state(s) : "",
	    sizeof(o->state));
	ctl_strlcpy(o->name, s->name, sizeof(o->name));
	ctl_strlcpy(o->peer, s->peer, sizeof(o->peer));
	o->age_sec = (uint64_t)((now - s->started_us) / LWS_US_PER_SEC);
	o->bytes = STAT_GET(s->st.bytes);
	o->messages = STAT_GET(s->st.messages);
	o->digests = STAT_GET(s->st.digests);
	o->digests_verified = STAT_GET(s->st.verified);
	o->digest_mismatches = STAT_GET(s->st.mismatched);
	o->bytes_per_sec = STAT_GET(s->st.bytes_per_sec);
	o->avg_bytes_per_sec = stream_avg_rate(s, now);
	o->backpressure_pauses = STAT_GET(s->st.bp_pauses);
	o->backpressure_usec = STAT_GET(s->st.bp_usec);
	o->latency_last_us = STAT_GET(s->st.latency_last_us);
	o->latency_max_us = STAT_GET(s->st.latency_max_us);
	stream_get_digest(s, o->last_digest, sizeof(o->last_digest));
	stream_get_error(s, o->error, sizeof(o->error));
	o->reconnects = STAT_GET(s->reconnects);
	o->link_id = STAT_GET(s->link_id);
	o->local_port = (uint32_t)STAT_GET(s->local_port);
	o->connect_tcp_us = STAT_GET(s->st.connect_tcp_us);
	o->connect_tls_us = STAT_GET(s->st.connect_tls_us);
	o->connect_upgrade_us = STAT_GET(s->st.connect_upgrade_us);
	{
		struct hist_snap h;

		hist_read(&s->st.latency, &h);
		memcpy(o->latency_n, h.n, sizeof(o->latency_n));
		o->latency_sum_us = h.sum_us;
	}
	o->next_attempt_in_ms = STAT_GET(s->next_attempt_us) == 0 ? -1 :
	    ((int64_t)STAT_GET(s->next_attempt_us) - now) / LWS_US_PER_MS;
	if (o->next_attempt_in_ms < -1)
		o->next_attempt_in_ms = 0;	/* due: about to run */
}

/* An ended stream, from the history's copy. */
void
record_ctl_info(const struct stream_record *r, struct ctl_stream *o)
{
	int64_t secs_us = r->ended_us - r->started_us;

	memset(o, 0, sizeof(*o));
	o->id = r->id;
	o->role = r->role;
	o->mode = r->mode;
	o->ended = 1;
	o->reconnects = r->reconnects;
	o->link_id = r->link_id;
	o->local_port = (uint32_t)r->local_port;
	o->next_attempt_in_ms = -1;		/* none: it ended */
	o->connect_tcp_us = r->connect_tcp_us;
	o->connect_tls_us = r->connect_tls_us;
	o->connect_upgrade_us = r->connect_upgrade_us;
	memcpy(o->latency_n, r->latency.n, sizeof(o->latency_n));
	o->latency_sum_us = r->latency.sum_us;
	ctl_strlcpy(o->state, r->state, sizeof(o->state));
	ctl_strlcpy(o->end_reason, r->end_reason, sizeof(o->end_reason));
	ctl_strlcpy(o->error, r->error, sizeof(o->error));
	ctl_strlcpy(o->name, r->name, sizeof(o->name));
	ctl_strlcpy(o->peer, r->peer, sizeof(o->peer));
	o->age_sec = (uint64_t)(secs_us / LWS_US_PER_SEC);
	o->run_usec = (uint64_t)secs_us;
	o->bytes = r->bytes;
	o->messages = r->messages;
	o->digests = r->digests;
	o->digests_verified = r->verified;
	o->digest_mismatches = r->mismatched;
	o->avg_bytes_per_sec = secs_us > 0 ? (uint64_t)((double)r->bytes *
	    LWS_US_PER_SEC / secs_us) : 0;
	o->backpressure_pauses = r->bp_pauses;
	o->backpressure_usec = r->bp_usec;
	o->latency_last_us = r->latency_last_us;
	o->latency_max_us = r->latency_max_us;
	ctl_strlcpy(o->last_digest, r->last_digest, sizeof(o->last_digest));
}
