/*
 * wsflowd.c — main: options, configuration, the lws context, signals,
 * the loop, and a graceful stop.
 */
#include <sys/signalfd.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "daemon.h"
#include "gen.h"
#include "listen.h"
#include "log.h"
#include "producer.h"
#include "reload.h"
#include "sd.h"
#include "tls.h"
#include "worker.h"
#include "ws.h"

#define EXIT_CONFIG	78	/* EX_CONFIG */
#define TICK_US		LWS_US_PER_SEC

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: %s [-dnv] [-f file]\n",
	    program_invocation_short_name);
	exit(1);
}

static void
daemon_stop(struct wsflowd *wd, const char *why);

/* ---- signals: a signalfd polled by lws, handled in the loop ---- */

static int
signal_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	struct wsflowd *wd = lws_context_user(lws_get_context(wsi));
	struct signalfd_siginfo si;

	(void)user;
	(void)in;
	(void)len;
	if (reason != LWS_CALLBACK_RAW_RX_FILE)
		return 0;
	while (read(lws_get_socket_fd(wsi), &si, sizeof(si)) ==
	    (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			daemon_stop(wd, si.ssi_signo == SIGTERM ? "SIGTERM" :
			    "SIGINT");
			break;
		case SIGHUP: {
			char err[WSFLOW_ERR_MAX], note[128];

			(void)daemon_reload(wd, err, sizeof(err), note,
			    sizeof(note));
			break;
		}
		default:
			break;
		}
	}
	return 0;
}

static const struct lws_protocols signal_protocol = {
	.name = "wsflow-signal",
	.callback = signal_callback,
};

static int
signals_setup(struct wsflowd *wd)
{
	sigset_t set;
	lws_sock_file_fd_type fd;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
	    (fd.filefd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) ==
	    -1) {
		log_err("signalfd: %s", strerror(errno));
		return -1;
	}
	if (lws_adopt_descriptor_vhost(wd->local_vh, LWS_ADOPT_RAW_FILE_DESC,
	    fd, "wsflow-signal", NULL) == NULL) {
		log_err("cannot poll the signalfd");
		return -1;
	}
	return 0;
}

/* ---- housekeeping and stop ---- */

static void
tick(lws_sorted_usec_list_t *sul)
{
	struct wsflowd *wd = lws_container_of(sul, struct wsflowd, sul_tick);
	int64_t late;
	int stuck;

	if ((stuck = worker_stalled(wd, &late)) != -1)
		log_ratelimited(LOG_ERR, "worker %d has not turned its loop "
		    "for %lld s: its streams are stuck%s", stuck,
		    (long long)(late / LWS_US_PER_SEC), wd->watchdog_usec ?
		    "; the watchdog is no longer pinged" : "");
	sd_status(wd);
	producers_progress(wd, lws_now_usecs());
	lws_sul_schedule(wd->ctx, 0, &wd->sul_tick, tick, TICK_US);
}

/* Polled during a stop: done when every stream is gone, or at the end. */
static void
stop_check(lws_sorted_usec_list_t *sul)
{
	struct wsflowd *wd = lws_container_of(sul, struct wsflowd, sul_stop);

	unsigned long left;

	/* Streams, then their sockets: lws holds a socket until the
	 * peer has answered our close (or its timeout). */
	left = stream_count(&wd->reg);
	left += atomic_load(&wd->reg.sockets) + atomic_load(&wd->reg.pending);
	if (left == 0 || lws_now_usecs() >= wd->stop_deadline_us) {
		if (left != 0)
			log_warnx("%lu streams or sockets still open after "
			    "the grace period: closing them", left);
		wd->done = true;
		lws_cancel_service(wd->ctx);
		return;
	}
	lws_sul_schedule(wd->ctx, 0, &wd->sul_stop, stop_check,
	    20 * LWS_US_PER_MS);
}

static void
daemon_stop(struct wsflowd *wd, const char *why)
{
	if (wd->stopping)
		return;
	wd->stopping = true;
	sd_stopping();
	log_notice("%s: stopping, %lu streams to close", why,
	    stream_count(&wd->reg));
	listeners_close(wd);
	for (unsigned i = 0; i < wd->nworkers; i++)
		worker_stop_all(&wd->workers[i], true);
	wd->stop_deadline_us = lws_now_usecs() + WSFLOW_STOP_GRACE_US;
	lws_sul_schedule(wd->ctx, 0, &wd->sul_stop, stop_check, 1);
}

/* ---- start-up ---- */

/*
 * The main thread's context: signals, the control socket and the
 * listening sockets.  Streams live in the workers' contexts.
 */
static int
context_create(struct wsflowd *wd)
{
	struct lws_context_creation_info info;

	wd->fd_limit = listen_fit_fds(&wd->conf);
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	info.fd_limit_per_thread = wd->fd_limit;
	info.user = wd;
	if ((wd->ctx = lws_create_context(&info)) == NULL) {
		log_err("cannot create the lws context");
		return -1;
	}
	/* lws keeps the pointer: the array lives as long as the daemon. */
	wd->main_protocols[0] = signal_protocol;
	wd->main_protocols[1] = acceptor_protocol;
	wd->main_protocols[2] = ctl_protocol;
	wd->main_protocols[3] = ctl_accept_protocol;
	memset(&info, 0, sizeof(info));
	info.vhost_name = "main";
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = wd->main_protocols;
	if ((wd->local_vh = lws_create_vhost(wd->ctx, &info)) == NULL) {
		log_err("cannot create the main vhost");
		return -1;
	}
	return 0;
}

/*
 * Every TLS file loads, as this user: a listener's certificate and key
 * (and belong together), a producer's CA file.  At start as under -n: the
 * service's user may not read a root-only key, and that will not mend by
 * restarting (exit 78, no restart loop).
 */
static int
conf_check_tls(const struct wsflow_conf *conf, char *err, size_t errlen)
{
	char why[WSFLOW_ERR_MAX / 2];

	for (size_t i = 0; i < conf->server.nlisten; i++) {
		const struct listen_conf *l = &conf->server.listen[i];
		SSL_CTX *ctx;

		if (l->tls_cert == NULL)
			continue;
		if ((ctx = tls_server_ctx(l->tls_cert, l->tls_key, why,
		    sizeof(why))) == NULL) {
			snprintf(err, errlen, "%.200s:%d: %s", conf->path,
			    l->line, why);
			return -1;
		}
		SSL_CTX_free(ctx);
	}
	for (size_t i = 0; i < conf->nproducers; i++) {
		const struct producer_conf *pc = &conf->producers[i];

		if (pc->tls_ca != NULL &&
		    tls_check_ca(pc->tls_ca, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "%.200s:%d: producer %.40s: %.200s",
			    conf->path, pc->line, pc->name, why);
			return -1;
		}
	}
	return 0;
}

/* The configured producers with autostart, spread over the workers. */
static int
producers_autostart(struct wsflowd *wd)
{
	char err[WSFLOW_ERR_MAX];

	for (size_t i = 0; i < wd->conf.nproducers; i++) {
		const struct producer_conf *pc = &wd->conf.producers[i];
		uint64_t id = 0;

		if (pc->autostart && producer_launch(wd, pc, &id, NULL, err,
		    sizeof(err)) == -1) {
			log_err("producer %s: %s", pc->name, err);
			return -1;
		}
	}
	return 0;
}

/*
 * What the daemon did, in the words that apply: a producer-only daemon
 * served nothing and says what its producers sent instead.
 */
static void
stop_summary(struct wsflowd *wd)
{
	struct totals t;
	char srv[128] = "", prod[192] = "";

	totals_get(&wd->reg, &t);
	if (wd->nlisteners > 0 || t.connections_total > 0)
		snprintf(srv, sizeof(srv), "%llu stream%s served, %llu bytes "
		    "hashed", (unsigned long long)t.connections_total,
		    t.connections_total == 1 ? "" : "s",
		    (unsigned long long)t.bytes_received);
	if (t.producers_total > 0 || wd->nlisteners == 0)
		snprintf(prod, sizeof(prod), "%llu producer stream%s, %llu "
		    "bytes sent, %llu digests verified, %llu mismatched",
		    (unsigned long long)t.producers_total,
		    t.producers_total == 1 ? "" : "s",
		    (unsigned long long)t.bytes_sent,
		    (unsigned long long)t.digests_verified,
		    (unsigned long long)t.digest_mismatches);
	log_notice("stopped: %s%s%s", srv, *srv && *prod ? "; " : "", prod);
}

int
main(int argc, char *argv[])
{
	struct wsflowd wd;
	struct sd_sockets sds;
	char err[WSFLOW_ERR_MAX];
	const char *path = WSFLOW_CONF_DEFAULT;
	int ch, debug = 0, check = 0, verbose = 0;

	while ((ch = getopt(argc, argv, "df:nv")) != -1) {
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 'f':
			path = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	memset(&wd, 0, sizeof(wd));
	registry_init(&wd.reg);
	live_init(&wd.live);
	log_init(debug || check ? LOG_TO_STDERR : LOG_TO_JOURNAL, LOG_INFO);
	if (conf_load_file(path, &wd.conf, err, sizeof(err)) == -1 ||
	    conf_check_tls(&wd.conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		conf_free(&wd.conf);
		if (!check)
			sd_refuse_pending(err);
		return EXIT_CONFIG;
	}
	if (check) {
		printf("configuration OK\n");
		conf_free(&wd.conf);
		return 0;
	}
	wd.conf_path = path;
	wd.md = EVP_get_digestbyname(wd.conf.server.digest);
	/* -v raises the level above the file's, also across reloads. */
	wd.log_floor = verbose == 0 ? LOG_ERR : LOG_NOTICE + verbose;
	if (wd.log_floor > LOG_DEBUG)
		wd.log_floor = LOG_DEBUG;
	log_setlevel(wd.conf.log_level > wd.log_floor ? wd.conf.log_level :
	    wd.log_floor);
	lws_set_log_level(log_lws_mask(log_getlevel()), log_lws);

	wd.exit_code = 1;
	wd.started_us = lws_now_usecs();
	sd_sockets_take(&sds);
	/* Signals are blocked before any thread exists: all inherit it. */
	if (registry_set_history(&wd.reg, wd.conf.server.history) == -1 ||
	    context_create(&wd) == -1 || signals_setup(&wd) == -1 ||
	    listeners_open(&wd, sds.ws, sds.nws) == -1 ||
	    workers_create(&wd, &producer_protocol) == -1 ||
	    listeners_attach(&wd) == -1 || workers_run(&wd) == -1 ||
	    control_open(&wd, sds.control) == -1 ||
	    producers_autostart(&wd) == -1)
		goto out;
	log_notice("wsflowd %s started: %zu listener(s), %u worker(s), %s, "
	    "batch %llu, mask %s, generator %s", WSFLOW_VERSION,
	    wd.nlisteners, wd.nworkers, wd.conf.server.digest,
	    (unsigned long long)wd.conf.server.batch_size, ws_mask_variant(),
	    gen_fill_variant());
	lws_sul_schedule(wd.ctx, 0, &wd.sul_tick, tick, TICK_US);
	/* Every listener and the control socket accept: ready. */
	sd_ready(&wd);
	sd_watchdog_start(&wd);

	while (!wd.done)
		if (lws_service(wd.ctx, 0) < 0)
			break;
	wd.exit_code = wd.done ? 0 : 1;
out:
	workers_join(&wd);
	if (wd.exit_code == 0)
		stop_summary(&wd);
	control_close(&wd);
	if (wd.ctx != NULL) {
		lws_sul_cancel(&wd.sul_tick);
		lws_sul_cancel(&wd.sul_stop);
		lws_sul_cancel(&wd.sul_watchdog);
		lws_context_destroy(wd.ctx);
	}
	listeners_free(&wd);
	free(wd.workers);
	live_free(&wd.live);
	producers_progress_free(&wd);
	registry_free(&wd.reg);
	conf_free(&wd.conf);
	return wd.exit_code;
}
