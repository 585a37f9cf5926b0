/*
 * reload.c — a new configuration, applied without touching what did not
 * change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "listen.h"
#include "log.h"
#include "producer.h"
#include "reload.h"
#include "sd.h"
#include "worker.h"

static bool
listeners_differ(const struct wsflow_conf *a, const struct wsflow_conf *b)
{
	if (a->server.nlisten != b->server.nlisten)
		return true;
	for (size_t i = 0; i < a->server.nlisten; i++) {
		const struct listen_conf *x = &a->server.listen[i],
		    *y = &b->server.listen[i];

		if (strcmp(x->address, y->address) != 0 || x->port != y->port ||
		    (x->tls_cert == NULL) != (y->tls_cert == NULL))
			return true;
	}
	return false;
}

/*
 * Producers removed from the file stop, changed ones restart, added ones
 * start.  Ad-hoc producers and unchanged entries are left alone.  The
 * workers do the stopping and starting; wd->conf is already the new one,
 * so what starts uses its digest and batch size.
 */
static void
producers_reload(struct wsflowd *wd, const struct wsflow_conf *oc,
    unsigned *stopped, unsigned *started)
{
	const struct wsflow_conf *nc = &wd->conf;
	char err[WSFLOW_ERR_MAX];
	struct stream *s;

	pthread_mutex_lock(&wd->reg.lock);
	TAILQ_FOREACH(s, &wd->reg.streams, entry) {
		const struct producer_conf *old, *new;

		if (s->role != ROLE_PRODUCER ||
		    (old = conf_find_producer(oc, s->name)) == NULL)
			continue;		/* ad hoc: not the file's */
		new = conf_find_producer(nc, s->name);
		if (new != NULL && conf_producer_equal(old, new))
			continue;
		worker_stop(s->owner, s->id, false);
		(*stopped)++;
	}
	pthread_mutex_unlock(&wd->reg.lock);
	for (size_t i = 0; i < nc->nproducers; i++) {
		const struct producer_conf *new = &nc->producers[i], *old;

		old = conf_find_producer(oc, new->name);
		if (!new->autostart || (old != NULL &&
		    conf_producer_equal(old, new)))
			continue;
		if (producer_launch(wd, new, stream_new_id(&wd->reg), NULL, err,
		    sizeof(err)) == -1)
			log_err("reload: producer %s: %s", new->name, err);
		else
			(*started)++;
	}
}

/*
 * Parse the file in full; refuse it whole if it is broken.  Otherwise
 * producers removed from it stop, changed ones restart, added ones start;
 * streams whose configuration did not change are not touched.  Server
 * settings apply to new connections; listeners need a restart.
 */
int
daemon_reload(struct wsflowd *wd, char *err, size_t errlen)
{
	struct wsflow_conf nc, oc;
	struct server_params params;
	unsigned stopped = 0, started = 0;

	if (wd->stopping) {
		snprintf(err, errlen, "daemon is stopping");
		return -1;
	}
	sd_reloading();
	if (conf_load_file(wd->conf_path, &nc, err, errlen) == -1) {
		log_stream(LOG_ERR, NULL, "reload-refused", "reload refused, "
		    "keeping the running configuration: %s", err);
		sd_ready(wd);
		return -1;
	}
	(void)listen_fit_fds(&nc);	/* as at start: fit the fd limit */
	if (listeners_differ(&wd->conf, &nc))
		log_warnx("reload: listener changes take effect at restart");
	if (strcmp(wd->conf.control.path, nc.control.path) != 0)
		log_warnx("reload: control path changes take effect at "
		    "restart");
	oc = wd->conf;
	wd->conf = nc;
	wd->md = EVP_get_digestbyname(wd->conf.server.digest);
	conf_server_params(&wd->conf, &params);
	for (unsigned i = 0; i < wd->nworkers; i++)
		worker_set_params(&wd->workers[i], &params);
	producers_reload(wd, &oc, &stopped, &started);
	if (registry_set_history(&wd->reg, wd->conf.server.history) == -1)
		log_warnx("reload: out of memory: server.history unchanged");
	conf_free(&oc);
	log_setlevel(wd->conf.log_level > wd->log_floor ? wd->conf.log_level :
	    wd->log_floor);
	lws_set_log_level(log_lws_mask(log_getlevel()), log_lws);
	log_stream(LOG_NOTICE, NULL, "reload", "configuration reloaded from "
	    "%s: %u producer(s) stopped, %u started", wd->conf_path, stopped,
	    started);
	sd_ready(wd);
	return 0;
}

