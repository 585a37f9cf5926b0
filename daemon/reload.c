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
str_same(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool
listeners_differ(const struct wsflow_conf *a, const struct wsflow_conf *b)
{
	if (a->server.nlisten != b->server.nlisten)
		return true;
	for (size_t i = 0; i < a->server.nlisten; i++) {
		const struct listen_conf *x = &a->server.listen[i],
		    *y = &b->server.listen[i];

		if (strcmp(x->address, y->address) != 0 || x->port != y->port ||
		    !str_same(x->tls_cert, y->tls_cert) ||
		    !str_same(x->tls_key, y->tls_key))
			return true;
	}
	return false;
}

/*
 * The settings a reload cannot apply, named in "note" (empty when there
 * are none): the sockets and the threads are made once, at start.
 */
static void
restart_only(const struct wsflow_conf *oc, const struct wsflow_conf *nc,
    char *note, size_t notelen)
{
	const char *what[4];
	size_t n = 0, off = 0;

	if (listeners_differ(oc, nc))
		what[n++] = "server.listen";
	if (strcmp(oc->control.path, nc->control.path) != 0)
		what[n++] = "control.path";
	if (oc->control.mode != nc->control.mode ||
	    !str_same(oc->control.group, nc->control.group))
		what[n++] = "control.mode/group";
	if (oc->server.workers != nc->server.workers)
		what[n++] = "server.workers";
	note[0] = '\0';
	for (size_t i = 0; i < n && off < notelen; i++)
		off += (size_t)snprintf(note + off, notelen - off, "%s%s",
		    i ? ", " : "", what[i]);
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
		uint64_t id = 0;

		old = conf_find_producer(oc, new->name);
		if (!new->autostart || (old != NULL &&
		    conf_producer_equal(old, new)))
			continue;
		if (producer_launch(wd, new, &id, NULL, err, sizeof(err)) == -1)
			log_err("reload: producer %s: %s", new->name, err);
		else
			(*started)++;
	}
}

/*
 * Parse the file in full; refuse it whole if it is broken.  Otherwise
 * producers removed from it stop, changed ones restart, added ones start;
 * streams whose configuration did not change are not touched.  Server
 * settings apply to new connections; "note" names what needs a restart
 * (listeners, control socket, workers), empty when nothing does.
 */
int
daemon_reload(struct wsflowd *wd, char *err, size_t errlen, char *note,
    size_t notelen)
{
	struct wsflow_conf nc, oc;
	struct server_params params;
	unsigned stopped = 0, started = 0;

	note[0] = '\0';
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
	restart_only(&wd->conf, &nc, note, notelen);
	if (note[0] != '\0')
		log_warnx("reload: changes to %s take effect at restart",
		    note);
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

