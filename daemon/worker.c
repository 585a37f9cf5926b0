/*
 * worker.c — worker threads: each runs its own lws context and the
 * streams handed to it (accepted sockets, producers).
 *
 * Another thread talks to a worker only through its inbox (a
 * mutex-guarded list, taken off whole) and lws_cancel_service(), the one
 * lws call that is safe from another thread.  A worker runs the work it
 * is given and asks its streams, through their operations, to stop and
 * to tick: it knows nothing of their kinds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "worker.h"

#define WORKER_TICK_US	LWS_US_PER_SEC

/* ---- the inbox ---- */

static int
inbox_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	struct worker *w;
	struct work_list todo;
	struct work *k;

	(void)user;
	(void)in;
	(void)len;
	if (reason != LWS_CALLBACK_EVENT_WAIT_CANCELLED)
		return 0;
	w = lws_context_user(lws_get_context(wsi));
	TAILQ_INIT(&todo);
	pthread_mutex_lock(&w->inbox_lock);
	TAILQ_CONCAT(&todo, &w->inbox, entry);
	pthread_mutex_unlock(&w->inbox_lock);
	while ((k = TAILQ_FIRST(&todo)) != NULL) {
		TAILQ_REMOVE(&todo, k, entry);
		k->run(w, k);
		free(k);
	}
	return 0;
}

static const struct lws_protocols inbox_protocol = {
	.name = "wsflow-inbox",
	.callback = inbox_callback,
};

/* Any thread: k (malloc'd, a struct work first) runs on w, then is freed. */
void
worker_post(struct worker *w, struct work *k)
{
	pthread_mutex_lock(&w->inbox_lock);
	TAILQ_INSERT_TAIL(&w->inbox, k, entry);
	pthread_mutex_unlock(&w->inbox_lock);
	lws_cancel_service(w->ctx);
}

/* The built-in work: stop one stream or all, new parameters, exit. */
struct stop_work {
	struct work	 k;
	uint64_t	 id;		/* 0: all */
	bool		 going_away;
};

struct params_work {
	struct work	 k;
	struct server_params params;
};

static void
stop_run(struct worker *w, struct work *k)
{
	struct stop_work *sw = (struct stop_work *)k;
	struct stream *s, *next;

	if (sw->id != 0) {
		if ((s = stream_by_id(&w->streams, sw->id)) != NULL)
			s->ops->stop(s, sw->going_away);
		return;
	}
	/* A stop may free the stream: walk with a saved next. */
	for (s = TAILQ_FIRST(&w->streams); s != NULL; s = next) {
		next = TAILQ_NEXT(s, wentry);
		s->ops->stop(s, sw->going_away);
	}
}

static void
post_stop(struct worker *w, uint64_t id, bool going_away)
{
	struct stop_work *sw = calloc(1, sizeof(*sw));

	if (sw == NULL) {
		log_warnx("worker %u: out of memory for a stop", w->index);
		return;
	}
	sw->k.run = stop_run;
	sw->id = id;
	sw->going_away = going_away;
	worker_post(w, &sw->k);
}

void
worker_stop(struct worker *w, uint64_t id, bool going_away)
{
	if (id != 0)
		post_stop(w, id, going_away);
}

void
worker_stop_all(struct worker *w, bool going_away)
{
	post_stop(w, 0, going_away);
}

static void
params_run(struct worker *w, struct work *k)
{
	free(w->params.origins);
	free(w->params.subprotocols);
	w->params = ((struct params_work *)k)->params;
}

static void
params_drop(struct worker *w, struct work *k)
{
	(void)w;
	free(((struct params_work *)k)->params.origins);
	free(((struct params_work *)k)->params.subprotocols);
}

/* A copy of p that the worker owns, strings and all; 0 or -1. */
static int
params_copy(struct server_params *to, const struct server_params *p)
{
	*to = *p;
	to->origins = to->subprotocols = NULL;
	if ((p->origins != NULL &&
	    (to->origins = strdup(p->origins)) == NULL) ||
	    (p->subprotocols != NULL &&
	    (to->subprotocols = strdup(p->subprotocols)) == NULL)) {
		free(to->origins);
		return -1;
	}
	return 0;
}

void
worker_set_params(struct worker *w, const struct server_params *p)
{
	struct params_work *pw = calloc(1, sizeof(*pw));

	if (pw == NULL || params_copy(&pw->params, p) == -1) {
		log_warnx("worker %u: out of memory for new parameters",
		    w->index);
		free(pw);
		return;
	}
	pw->k.run = params_run;
	pw->k.drop = params_drop;
	worker_post(w, &pw->k);
}

static void
exit_run(struct worker *w, struct work *k)
{
	(void)k;
	w->done = true;
}

/* ---- streams ---- */

void
worker_stream_attach(struct worker *w, struct stream *s)
{
	TAILQ_INSERT_TAIL(&w->streams, s, wentry);
}

/* A stream born on this worker (an accepted connection). */
void
worker_stream_add(struct worker *w, struct stream *s, enum stream_role role,
    enum wsflow_mode mode, const struct stream_ops *ops)
{
	stream_publish(&w->wd->reg, w, s, 0, role, mode, ops);
	worker_stream_attach(w, s);
}

/* Gone from the worker and the registry; once. */
void
worker_stream_remove(struct worker *w, struct stream *s)
{
	if (s->id == 0)
		return;
	TAILQ_REMOVE(&w->streams, s, wentry);
	stream_withdraw(&w->wd->reg, s);
	s->id = 0;
}

/* A client vhost trusting one private CA, made on first use. */
struct lws_vhost *
worker_client_vhost(struct worker *w, const char *ca)
{
	struct lws_context_creation_info info;
	struct lws_vhost *vh;
	char *name;

	if (ca == NULL)
		return w->local_vh;
	for (size_t i = 0; i < w->nca_vhosts; i++)
		if (strcmp(w->ca_vhosts[i].ca, ca) == 0)
			return w->ca_vhosts[i].vh;
	if (w->nca_vhosts == sizeof(w->ca_vhosts) / sizeof(w->ca_vhosts[0]))
		return NULL;
	/* lws keeps the name pointer: it lives in the worker. */
	name = w->ca_vhosts[w->nca_vhosts].name;
	snprintf(name, sizeof(w->ca_vhosts[0].name), "client-ca-%zu",
	    w->nca_vhosts);
	memset(&info, 0, sizeof(info));
	info.vhost_name = name;
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = w->local_protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.client_ssl_ca_filepath = ca;
	if ((vh = lws_create_vhost(w->ctx, &info)) == NULL)
		return NULL;
	if ((w->ca_vhosts[w->nca_vhosts].ca = strdup(ca)) == NULL)
		return NULL;
	w->ca_vhosts[w->nca_vhosts++].vh = vh;
	return vh;
}

/* ---- choosing, watching ---- */

/* The least loaded worker: connections and producers alike. */
struct worker *
worker_pick(struct wsflowd *wd)
{
	struct worker *best = &wd->workers[0];

	for (unsigned i = 1; i < wd->nworkers; i++)
		if (atomic_load(&wd->workers[i].load) <
		    atomic_load(&best->load))
			best = &wd->workers[i];
	return best;
}

/*
 * The first worker whose loop has not turned for wd->stall_us, or -1.
 * A stuck worker stops every stream it runs while the main thread goes
 * on: the watchdog and /healthz must see it.
 */
int
worker_stalled(struct wsflowd *wd, int64_t *late_us)
{
	int64_t now = lws_now_usecs();

	for (unsigned i = 0; i < wd->nworkers; i++) {
		int64_t late = now - atomic_load(&wd->workers[i].beat_us);

		if (wd->workers[i].running && late > wd->stall_us) {
			if (late_us != NULL)
				*late_us = late;
			return (int)i;
		}
	}
	return -1;
}

/*
 * On the worker: the buffer its producers build frames in, at least
 * len octets.  Shared because a frame is generated, hashed and handed
 * to lws_write() in one writeable callback (lws copies what the socket
 * does not take), so no producer stream owns a frame-sized buffer.
 */
uint8_t *
worker_txbuf(struct worker *w, size_t len)
{
	uint8_t *n;

	if (len <= w->txcap)
		return w->txbuf;
	if ((n = realloc(w->txbuf, len)) == NULL)
		return NULL;
	w->txbuf = n;
	w->txcap = len;
	return n;
}

static void
worker_tick(lws_sorted_usec_list_t *sul)
{
	struct worker *w = lws_container_of(sul, struct worker, sul_tick);
	int64_t now = lws_now_usecs();
	struct stream *s, *next;

	atomic_store(&w->beat_us, now);
	for (s = TAILQ_FIRST(&w->streams); s != NULL; s = next) {
		next = TAILQ_NEXT(s, wentry);
		s->ops->tick(s, now);
	}
	lws_sul_schedule(w->ctx, 0, &w->sul_tick, worker_tick, WORKER_TICK_US);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	char name[16];

	snprintf(name, sizeof(name), "wsflowd-w%u", w->index);
	(void)pthread_setname_np(pthread_self(), name);	/* for ps, tests */
	lws_sul_schedule(w->ctx, 0, &w->sul_tick, worker_tick, WORKER_TICK_US);
	while (!w->done)
		if (lws_service(w->ctx, 0) < 0)
			break;
	lws_sul_cancel(&w->sul_tick);
	/*
	 * The context is destroyed by the main thread once every worker
	 * has stopped: lws keeps some OpenSSL state process-wide, and
	 * contexts torn down in parallel leak their client SSL_CTX.
	 */
	return NULL;
}

/* ---- start and stop ---- */

static int
worker_context(struct wsflowd *wd, struct worker *w, unsigned index)
{
	struct lws_context_creation_info info;
	struct server_params p;

	w->wd = wd;
	w->index = index;
	TAILQ_INIT(&w->streams);
	TAILQ_INIT(&w->inbox);
	pthread_mutex_init(&w->inbox_lock, NULL);
	conf_server_params(&wd->conf, &p);
	if (params_copy(&w->params, &p) == -1)
		return -1;
	if ((w->rxbuf = malloc(WSFLOW_RX_CHUNK)) == NULL)
		return -1;
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
	    LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
	    LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.pt_serv_buf_size = WSFLOW_PT_BUF;
	info.timeout_secs = wd->conf.server.handshake_timeout;
	info.fd_limit_per_thread = wd->fd_limit;
	info.user = w;
	if ((w->ctx = lws_create_context(&info)) == NULL)
		return -1;
	return 0;
}

/*
 * Every worker's context, and its local vhost (clients, the inbox).
 * Vhosts come after every context exists: each context's creation moves
 * lws's process-wide OpenSSL ex_data indices, and an SSL_CTX made before
 * the last move would be looked up under the wrong one.
 */
int
workers_create(struct wsflowd *wd, const struct lws_protocols *client)
{
	struct lws_context_creation_info info;
	unsigned n = wd->conf.server.workers;

	if (n == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		n = cpus > 0 ? (unsigned)cpus : 1;
	}
	if (n > WSFLOW_WORKERS_MAX)
		n = WSFLOW_WORKERS_MAX;
	if ((wd->workers = calloc(n, sizeof(*wd->workers))) == NULL ||
	    (wd->reg.shards = calloc(n, sizeof(*wd->reg.shards))) == NULL) {
		log_err("workers: out of memory");
		return -1;
	}
	wd->stall_us = WSFLOW_STALL_MIN_US;
	for (unsigned i = 0; i < n; i++) {
		wd->nworkers = i + 1;
		wd->reg.shards[i] = &wd->workers[i].totals;
		wd->reg.nshards = i + 1;
		if (worker_context(wd, &wd->workers[i], i) == -1) {
			log_err("worker %u: cannot set up its lws context", i);
			return -1;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &wd->workers[i];

		/* lws keeps pointers to protocol arrays: they live in w. */
		w->local_protocols[0] = *client;
		w->local_protocols[1] = inbox_protocol;
		memset(&info, 0, sizeof(info));
		info.vhost_name = "local";
		info.port = CONTEXT_PORT_NO_LISTEN;
		info.protocols = w->local_protocols;
		info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		if ((w->local_vh = lws_create_vhost(w->ctx, &info)) == NULL) {
			log_err("worker %u: cannot set up its vhost", i);
			return -1;
		}
	}
	return 0;
}

int
workers_run(struct wsflowd *wd)
{
	for (unsigned i = 0; i < wd->nworkers; i++) {
		struct worker *w = &wd->workers[i];

		atomic_store(&w->beat_us, lws_now_usecs());
		if ((errno = pthread_create(&w->thread, NULL, worker_main,
		    w)) != 0) {
			log_err("worker %u: %s", i, strerror(errno));
			return -1;
		}
		w->running = true;
	}
	log_info("%u worker thread%s", wd->nworkers, wd->nworkers == 1 ? "" :
	    "s");
	return 0;
}

/* Tell every worker to finish, wait for it, and free what it held. */
void
workers_join(struct wsflowd *wd)
{
	for (unsigned i = 0; i < wd->nworkers; i++) {
		struct worker *w = &wd->workers[i];
		struct work *k;

		if (w->running && (k = calloc(1, sizeof(*k))) != NULL) {
			k->run = exit_run;
			worker_post(w, k);
		}
	}
	for (unsigned i = 0; i < wd->nworkers; i++) {
		struct worker *w = &wd->workers[i];

		if (w->running)
			pthread_join(w->thread, NULL);
		w->running = false;
	}
	/* One at a time, newest first, from this thread: see worker_main. */
	for (unsigned i = wd->nworkers; i-- > 0;) {
		struct worker *w = &wd->workers[i];
		struct stream *s;
		struct work *k;

		if (w->ctx != NULL) {
			/* Closes what is left; callbacks unregister streams. */
			lws_context_destroy(w->ctx);
			w->ctx = NULL;
		}
		while ((s = TAILQ_FIRST(&w->streams)) != NULL) {
			worker_stream_remove(w, s);
			if (s->ops->drop != NULL)
				s->ops->drop(s);
		}
		while ((k = TAILQ_FIRST(&w->inbox)) != NULL) {
			TAILQ_REMOVE(&w->inbox, k, entry);
			if (k->drop != NULL)
				k->drop(w, k);
			free(k);
		}
		for (size_t j = 0; j < w->nca_vhosts; j++)
			free(w->ca_vhosts[j].ca);
		w->nca_vhosts = 0;
		free(w->rxbuf);
		w->rxbuf = NULL;
		free(w->txbuf);
		w->txbuf = NULL;
		w->txcap = 0;
		free(w->params.origins);
		w->params.origins = NULL;
		free(w->params.subprotocols);
		w->params.subprotocols = NULL;
		pthread_mutex_destroy(&w->inbox_lock);
	}
}
