/*
 * worker.c — worker threads: each runs its own lws context and the
 * streams the main thread hands it (accepted sockets, producers).
 *
 * The main thread accepts and decides; a worker only ever hears from it
 * through its inbox (a mutex-guarded list, taken off whole) and
 * lws_cancel_service(), the one lws call that is safe from another
 * thread (lws notes §5.3, §7).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "server.h"
#include "wsflowd.h"

#define WORKER_TICK_US	LWS_US_PER_SEC

static void
handle(struct worker *w, struct wmsg *m)
{
	struct stream *s;

	switch (m->type) {
	case WMSG_ADOPT:
		/*
		 * From here lws counts it (WSI_CREATE .. WSI_DESTROY).  On
		 * failure lws has closed the fd: a peer that connects and
		 * goes (a port check, on a TLS listener) is no news.
		 */
		if (!w->wd->listeners[m->listener].tls &&
		    !w->params.lws_framing ?
		    wsserver_adopt(w->vh[m->listener], m->fd) == -1 :
		    lws_adopt_socket_vhost(w->vh[m->listener], m->fd) == NULL)
			log_debug("worker %u: a connection died while adopted",
			    w->index);
		atomic_fetch_sub(&w->wd->pending, 1);
		atomic_fetch_sub(&w->load, 1);
		break;
	case WMSG_START:
		producer_run(w, m->producer);
		break;
	case WMSG_STOP:
		if ((s = stream_by_id(&w->streams, m->id)) == NULL)
			break;
		if (s->role == ROLE_PRODUCER)
			producer_stop_id(w, m->id, m->going_away);
		else
			server_stream_close(s);
		break;
	case WMSG_STOP_ALL:
		server_stop_all(w);
		producers_stop_all(w, m->going_away);
		break;
	case WMSG_PARAMS:
		w->params = m->params;
		break;
	case WMSG_EXIT:
		w->done = true;
		break;
	}
}

static int
inbox_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	struct worker *w;
	struct wmsg_list todo;
	struct wmsg *m;

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
	while ((m = TAILQ_FIRST(&todo)) != NULL) {
		TAILQ_REMOVE(&todo, m, entry);
		handle(w, m);
		free(m);
	}
	return 0;
}

static const struct lws_protocols inbox_protocol = {
	.name = "wsflow-inbox",
	.callback = inbox_callback,
};

int
worker_post(struct worker *w, struct wmsg *m)
{
	pthread_mutex_lock(&w->inbox_lock);
	TAILQ_INSERT_TAIL(&w->inbox, m, entry);
	pthread_mutex_unlock(&w->inbox_lock);
	lws_cancel_service(w->ctx);
	return 0;
}

int
worker_post_simple(struct worker *w, enum wmsg_type type, uint64_t id,
    bool going_away)
{
	struct wmsg *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return -1;
	m->type = type;
	m->id = id;
	m->going_away = going_away;
	return worker_post(w, m);
}

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

void
worker_params(struct wsflowd *wd, struct server_params *p)
{
	p->batch_size = wd->conf.server.batch_size;
	p->md = wd->md;
	p->idle_timeout = wd->conf.server.idle_timeout;
	p->metrics = wd->conf.server.metrics;
	p->handshake_timeout = wd->conf.server.handshake_timeout;
	p->lws_framing = wd->conf.server.lws_framing;
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

void
totals_get(struct wsflowd *wd, struct totals *t)
{
	memset(t, 0, sizeof(*t));
	t->sockets = atomic_load(&wd->sockets);
	t->refused = STAT_GET(wd->refused);
	for (unsigned i = 0; i < wd->nworkers; i++) {
		struct worker *w = &wd->workers[i];

		t->connections += STAT_GET(w->server.connections);
		t->connections_total += STAT_GET(w->server.connections_total);
		t->bytes_received += STAT_GET(w->server.bytes_received);
		t->digests_sent += STAT_GET(w->server.digests_sent);
		t->running += STAT_GET(w->prod.running);
		t->bytes_sent += STAT_GET(w->prod.bytes_sent);
		t->digests_received += STAT_GET(w->prod.digests_received);
		t->digests_verified += STAT_GET(w->prod.digests_verified);
		t->digest_mismatches += STAT_GET(w->prod.digest_mismatches);
	}
}

static void
worker_tick(lws_sorted_usec_list_t *sul)
{
	struct worker *w = lws_container_of(sul, struct worker, sul_tick);
	int64_t now = lws_now_usecs();

	atomic_store(&w->beat_us, now);
	server_tick(w, now);
	producers_tick(w, now);
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

static int
worker_context(struct wsflowd *wd, struct worker *w, unsigned index,
    unsigned fd_limit)
{
	struct lws_context_creation_info info;

	w->wd = wd;
	w->index = index;
	TAILQ_INIT(&w->streams);
	TAILQ_INIT(&w->producers);
	TAILQ_INIT(&w->inbox);
	pthread_mutex_init(&w->inbox_lock, NULL);	/* destroyed: never */
	worker_params(wd, &w->params);

	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
	    LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
	    LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.pt_serv_buf_size = WSFLOW_PT_BUF;
	info.timeout_secs = wd->conf.server.handshake_timeout;
	info.fd_limit_per_thread = fd_limit;
	info.user = w;
	if ((w->ctx = lws_create_context(&info)) == NULL)
		return -1;
	return 0;
}

/*
 * Vhosts come after every context exists: each context's creation moves
 * lws's process-wide OpenSSL ex_data indices, and an SSL_CTX made before
 * the last move would be looked up under the wrong one.
 */
static int
worker_vhosts(struct wsflowd *wd, struct worker *w)
{
	struct lws_context_creation_info info;

	/* lws keeps pointers to protocol arrays and names: they live in w. */
	w->local_protocols[0] = producer_protocol;
	w->local_protocols[1] = inbox_protocol;
	memset(&info, 0, sizeof(info));
	info.vhost_name = "local";
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = w->local_protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	if ((w->local_vh = lws_create_vhost(w->ctx, &info)) == NULL)
		return -1;

	w->server_protocols[0] = server_protocol;
	w->server_protocols[1] = wsserver_protocol;
	if ((w->rxbuf = malloc(WSFLOW_RX_CHUNK)) == NULL)
		return -1;
	w->vh = calloc(wd->nlisteners, sizeof(*w->vh));
	w->vh_names = calloc(wd->nlisteners, sizeof(*w->vh_names));
	if (w->vh == NULL || w->vh_names == NULL)
		return -1;
	for (size_t i = 0; i < wd->nlisteners; i++) {
		const struct listener *l = &wd->listeners[i];

		snprintf(w->vh_names[i], sizeof(w->vh_names[i]), "ws-%s-%d",
		    l->address, l->port);
		if ((w->vh[i] = listener_vhost(w, l, w->vh_names[i])) ==
		    NULL) {
			log_err("listen %s:%d: cannot set up the %s vhost",
			    l->address, l->port, l->tls ? "TLS" : "plain");
			return -1;
		}
	}
	return 0;
}

int
workers_start(struct wsflowd *wd)
{
	unsigned n = wd->conf.server.workers;
	unsigned fd_limit = wd->fd_limit;

	if (n == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		n = cpus > 0 ? (unsigned)cpus : 1;
	}
	if (n > WSFLOW_WORKERS_MAX)
		n = WSFLOW_WORKERS_MAX;
	if ((wd->workers = calloc(n, sizeof(*wd->workers))) == NULL) {
		log_err("workers: out of memory");
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		wd->nworkers = i + 1;
		if (worker_context(wd, &wd->workers[i], i, fd_limit) == -1) {
			log_err("worker %u: cannot set up its lws context", i);
			return -1;
		}
	}
	for (unsigned i = 0; i < n; i++)
		if (worker_vhosts(wd, &wd->workers[i]) == -1) {
			log_err("worker %u: cannot set up its vhosts", i);
			return -1;
		}
	wd->stall_us = WSFLOW_STALL_MIN_US;
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &wd->workers[i];

		atomic_store(&w->beat_us, lws_now_usecs());
		if ((errno = pthread_create(&w->thread, NULL, worker_main,
		    w)) != 0) {
			log_err("worker %u: %s", i, strerror(errno));
			return -1;
		}
		w->running = true;
	}
	log_info("%u worker thread%s", n, n == 1 ? "" : "s");
	return 0;
}

/* Tell every worker to finish and wait for it. */
void
workers_join(struct wsflowd *wd)
{
	for (unsigned i = 0; i < wd->nworkers; i++) {
		struct worker *w = &wd->workers[i];

		if (w->running)
			worker_post_simple(w, WMSG_EXIT, 0, false);
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
		struct wmsg *m;

		if (w->ctx != NULL) {
			/* Closes what is left; callbacks unregister streams. */
			lws_context_destroy(w->ctx);
			w->ctx = NULL;
		}
		producers_free_all(w);
		while ((m = TAILQ_FIRST(&w->inbox)) != NULL) {
			TAILQ_REMOVE(&w->inbox, m, entry);
			if (m->type == WMSG_ADOPT)
				close(m->fd);
			else if (m->type == WMSG_START)
				producer_discard(w, m->producer);
			free(m);
		}
		for (size_t j = 0; j < w->nca_vhosts; j++)
			free(w->ca_vhosts[j].ca);
		free(w->vh);
		free(w->vh_names);
		free(w->rxbuf);
		w->rxbuf = NULL;
		w->vh = NULL;
		w->vh_names = NULL;
		w->nca_vhosts = 0;
	}
}
