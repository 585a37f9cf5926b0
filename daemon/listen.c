/*
 * listen.c — the WebSocket listeners.
 *
 * wsflowd makes (or inherits from systemd) its listening sockets itself
 * and polls each in the main loop as a plain file descriptor: lws 4.1.6
 * cannot take an existing listening socket, so this one path serves
 * socket activation and self-bound sockets alike (docs/lws.md §3).  Each
 * accepted connection goes to the least loaded worker as work, and there
 * to the server adapter that frames it: wsflowd's own (wsserver.c, TLS
 * included, tls.c) or lws's (serverlws.c, framing = "lws").
 */
#include <sys/resource.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "listen.h"
#include "log.h"
#include "server.h"
#include "tls.h"
#include "url.h"
#include "worker.h"

#define ACCEPT_BURST	16	/* accepts per wakeup: others get a turn */
#define ACCEPT_PAUSE_US	(200 * LWS_US_PER_MS)
#define FD_SPARE	64	/* listeners, control, signals, journal */

/*
 * Every connection is an fd: make room for max_connections plus
 * producers, control and spare, or lower max_connections to fit.  At
 * start and at every reload (the file's value would return otherwise).
 * Returns the size for each lws context's fd tables, 0 for lws's own.
 */
unsigned
listen_fit_fds(struct wsflow_conf *conf)
{
	struct rlimit rl;
	rlim_t want;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 0;
	want = (rlim_t)conf->server.max_connections + conf->nproducers +
	    FD_SPARE;
	if (rl.rlim_cur < want && rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < want) {
		uint32_t fit = rl.rlim_cur > FD_SPARE * 2 + conf->nproducers ?
		    (uint32_t)(rl.rlim_cur - FD_SPARE - conf->nproducers) : 16;

		log_warnx("max_connections %u does not fit in %llu file "
		    "descriptors: using %u", conf->server.max_connections,
		    (unsigned long long)rl.rlim_cur, fit);
		conf->server.max_connections = fit;
	}
	/* lws sizes its tables by the limit: keep those sane. */
	return rl.rlim_cur > 65536 ? 65536 : 0;
}

static int
bind_socket(const struct listener *l)
{
	struct addrinfo hints, *res, *ai;
	char port[8];
	int fd, on = 1, rc;
	const char *host = strcmp(l->address, "*") == 0 ? NULL : l->address;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", l->port);
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		log_err("listen %s:%d: %s", l->address, l->port,
		    gai_strerror(rc));
		return -1;
	}
	/*
	 * "*": getaddrinfo() lists 0.0.0.0 first, which would leave ::1
	 * out; take the IPv6 wildcard (dual-stack below) where the kernel
	 * has IPv6, else 0.0.0.0.
	 */
	ai = res;
	for (struct addrinfo *a = res; host == NULL && a != NULL;
	    a = a->ai_next)
		if (a->ai_family == AF_INET6) {
			ai = a;
			break;
		}
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1 && ai != res && errno == EAFNOSUPPORT) {
		ai = res;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
	}
	if (fd == -1) {
		log_err("listen %s:%d: socket: %s", l->address, l->port,
		    strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ai->ai_family == AF_INET6) {
		int only = host != NULL;	/* "*" is dual-stack */

		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only,
		    sizeof(only));
	}
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 ||
	    listen(fd, SOMAXCONN) == -1) {
		log_err("listen %s:%d: %s", l->address, l->port,
		    strerror(errno));
		close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* A listener's vhost in a worker: no lws listener, we accept. */
static struct lws_vhost *
listener_vhost(struct worker *w, struct listener *l, int lws_framing)
{
	struct lws_context_creation_info info;

	memset(&info, 0, sizeof(info));
	info.vhost_name = l->vh_names[w->index][lws_framing];
	/*
	 * lws moves an HTTP connection to the first vhost of its port that
	 * it finds: only the vhosts lws frames on may be "server" ones.
	 * Ours only poll the sockets we read ourselves.
	 */
	info.port = lws_framing ? CONTEXT_PORT_NO_LISTEN_SERVER :
	    CONTEXT_PORT_NO_LISTEN;
	info.protocols = l->protocols[lws_framing];
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
	    LWS_SERVER_OPTION_VALIDATE_UTF8;
	/* Until the headers are in (ah idle), and until the upgrade. */
	info.timeout_secs = w->wd->conf.server.handshake_timeout;
	info.timeout_secs_ah_idle = w->wd->conf.server.handshake_timeout;
	if (l->tls && lws_framing) {
		info.ssl_cert_filepath = l->tls_cert;
		info.ssl_private_key_filepath = l->tls_key;
		info.alpn = "http/1.1";		/* no ws-over-h2 (docs/lws.md §4) */
	}
	return lws_create_vhost(w->ctx, &info);
}

/* Every listener's vhosts in every worker, before the workers run. */
int
listeners_attach(struct wsflowd *wd)
{
	for (size_t i = 0; i < wd->nlisteners; i++) {
		struct listener *l = &wd->listeners[i];

		l->protocols[0][0] = wsserver_protocol;
		l->protocols[1][0] = serverlws_protocol;
		l->vh_own = calloc(wd->nworkers, sizeof(*l->vh_own));
		l->vh_lws = calloc(wd->nworkers, sizeof(*l->vh_lws));
		l->vh_names = calloc(wd->nworkers, sizeof(*l->vh_names));
		if (l->vh_own == NULL || l->vh_lws == NULL ||
		    l->vh_names == NULL) {
			log_err("listeners: out of memory");
			return -1;
		}
		for (unsigned j = 0; j < wd->nworkers; j++) {
			struct worker *w = &wd->workers[j];

			snprintf(l->vh_names[j][0], sizeof(l->vh_names[j][0]),
			    "ws-%s-%d", l->address, l->port);
			snprintf(l->vh_names[j][1], sizeof(l->vh_names[j][1]),
			    "lws-%s-%d", l->address, l->port);
			if ((l->vh_own[j] = listener_vhost(w, l, 0)) == NULL ||
			    (l->vh_lws[j] = listener_vhost(w, l, 1)) == NULL) {
				log_err("listen %s:%d: cannot set up the %s "
				    "vhost", l->address, l->port, l->tls ?
				    "TLS" : "plain");
				return -1;
			}
		}
	}
	return 0;
}

void
listeners_free(struct wsflowd *wd)
{
	for (size_t i = 0; i < wd->nlisteners; i++) {
		struct listener *l = &wd->listeners[i];

		free(l->tls_cert);
		free(l->tls_key);
		SSL_CTX_free(l->ssl_ctx);
		free(l->vh_own);
		free(l->vh_lws);
		free(l->vh_names);
	}
	free(wd->listeners);
	wd->listeners = NULL;
	wd->nlisteners = 0;
}

/*
 * Out of descriptors (or memory) the listening socket stays readable and
 * the loop would spin on it: stop polling it for a while.  The control
 * socket's acceptor uses this too.
 */
void
accept_pause(struct lws_context *ctx, struct lws *wsi,
    lws_sorted_usec_list_t *sul, sul_cb_t resume)
{
	lws_rx_flow_control(wsi, 0 | LWS_RXFLOW_REASON_FLAG_PROCESS_NOW);
	lws_sul_schedule(ctx, 0, sul, resume, ACCEPT_PAUSE_US);
}

bool
accept_out_of_room(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS ||
	    err == ENOMEM;
}

static void
acceptor_resume(lws_sorted_usec_list_t *sul)
{
	struct listener *l = lws_container_of(sul, struct listener,
	    sul_resume);

	lws_rx_flow_control(l->wsi, 1 | LWS_RXFLOW_REASON_FLAG_PROCESS_NOW);
}

/*
 * Over max_connections (or stopping): a plain 503 and close, best effort
 * and without waiting; existing streams are not touched.  Over TLS the
 * peer just sees the close.
 */
static void
refuse(struct wsflowd *wd, int fd, const struct listener *l)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Length: 0\r\nConnection: close\r\n\r\n";

	if (!l->tls)
		(void)send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT |
		    MSG_NOSIGNAL);
	close(fd);
	STAT_ADD(wd->reg.refused, 1);
	log_ratelimited(LOG_WARNING, "refused a connection on %s:%d: %s",
	    l->address, l->port, wd->stopping ? "stopping" :
	    "max_connections reached");
}

/*
 * On the worker: to the adapter that frames this listener now.  Counted
 * as pending until adopted, then by the adapter (its lws callbacks).
 */
struct adopt_work {
	struct work	 k;
	int		 fd;
	struct listener	*l;
};

static void
adopt_run(struct worker *w, struct work *k)
{
	struct adopt_work *a = (struct adopt_work *)k;
	struct listener *l = a->l;

	/* On failure lws has closed the fd: a peer that connects and goes
	 * (a port check, on a TLS listener) is no news. */
	if (w->params.framing == FRAMING_LWS ?
	    serverlws_adopt(l->vh_lws[w->index], a->fd) == -1 :
	    wsserver_adopt(l->vh_own[w->index], a->fd, l->ssl_ctx) == -1)
		log_debug("worker %u: a connection died while adopted",
		    w->index);
	atomic_fetch_sub(&w->wd->reg.pending, 1);
	atomic_fetch_sub(&w->load, 1);
}

static void
adopt_drop(struct worker *w, struct work *k)
{
	close(((struct adopt_work *)k)->fd);
	atomic_fetch_sub(&w->wd->reg.pending, 1);
	atomic_fetch_sub(&w->load, 1);
}

static int
hand_over(struct wsflowd *wd, struct listener *l, int fd)
{
	struct worker *w = worker_pick(wd);
	struct adopt_work *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return -1;
	a->k.run = adopt_run;
	a->k.drop = adopt_drop;
	a->fd = fd;
	a->l = l;
	atomic_fetch_add(&wd->reg.pending, 1);	/* until the worker has it */
	atomic_fetch_add(&w->load, 1);
	worker_post(w, &a->k);
	return 0;
}

static void
accept_some(struct listener *l)
{
	struct wsflowd *wd = l->wd;

	for (int i = 0; i < ACCEPT_BURST; i++) {
		int fd, on = 1;

		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (accept_out_of_room(errno)) {
				log_ratelimited(LOG_WARNING, "accept on %s:%d: "
				    "%s", l->address, l->port,
				    strerror(errno));
				accept_pause(wd->ctx, l->wsi, &l->sul_resume,
				    acceptor_resume);
			}
			return;
		}
		if (wd->stopping || atomic_load(&wd->reg.sockets) +
		    atomic_load(&wd->reg.pending) >=
		    wd->conf.server.max_connections) {
			refuse(wd, fd, l);
			continue;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		if (hand_over(wd, l, fd) == -1) {
			log_warnx("%s:%d: out of memory handing over a "
			    "connection", l->address, l->port);
			close(fd);
		}
	}
}

static int
acceptor_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	struct listener *l = lws_get_opaque_user_data(wsi);

	(void)user;
	(void)in;
	(void)len;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (l != NULL)
			accept_some(l);
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		if (l != NULL) {
			lws_sul_cancel(&l->sul_resume);
			l->wsi = NULL;
			l->fd = -1;	/* lws closed it */
		}
		return 0;
	default:
		return 0;
	}
}

const struct lws_protocols acceptor_protocol = {
	.name = "wsflow-acceptor",
	.callback = acceptor_callback,
};

/* address:port of a listening socket, as the config would write it. */
static int
sock_name(int fd, char *addr, size_t len, int *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
		return -1;
	return addr_format(&ss, true, addr, len, port);
}

static int
listener_start(struct wsflowd *wd, struct listener *l,
    const struct listen_conf *lc)
{
	lws_sock_file_fd_type fd;
	char err[WSFLOW_ERR_MAX];

	l->wd = wd;
	l->tls = lc->tls_cert != NULL;
	if (l->tls && ((l->tls_cert = strdup(lc->tls_cert)) == NULL ||
	    (l->tls_key = strdup(lc->tls_key)) == NULL)) {
		log_err("listeners: out of memory");
		return -1;
	}
	if (l->tls && (l->ssl_ctx = tls_server_ctx(l->tls_cert, l->tls_key,
	    err, sizeof(err))) == NULL) {
		log_err("listen %s:%d: %s", l->address, l->port, err);
		return -1;
	}
	if (l->fd == -1 && (l->fd = bind_socket(l)) == -1)
		return -1;
	fd.filefd = l->fd;
	l->wsi = lws_adopt_descriptor_vhost(wd->local_vh,
	    LWS_ADOPT_RAW_FILE_DESC, fd, acceptor_protocol.name, NULL);
	if (l->wsi == NULL) {
		l->fd = -1;	/* lws closed it */
		log_err("listen %s:%d: cannot poll the socket", l->address,
		    l->port);
		return -1;
	}
	lws_set_opaque_user_data(l->wsi, l);
	log_info("listening on %s:%d (%s%s)", l->address, l->port,
	    l->tls ? "wss" : "ws", l->inherited ? ", from systemd" : "");
	return 0;
}

/*
 * Sockets systemd passed are used first, each with the configured
 * listener of the same address and port (for its TLS settings) or as
 * plain ws; configured listeners left over are bound here (chrony's way:
 * the configuration stays the truth, activation is optional).
 */
int
listeners_open(struct wsflowd *wd, const int *inherited, size_t ninherited)
{
	size_t nconf = wd->conf.server.nlisten, n = 0;
	bool *covered;
	int rc = -1;

	wd->listeners = calloc(nconf + ninherited + 1, sizeof(*wd->listeners));
	covered = calloc(nconf + 1, sizeof(*covered));
	if (wd->listeners == NULL || covered == NULL) {
		log_err("listeners: out of memory");
		goto out;
	}

	for (size_t i = 0; i < ninherited; i++) {
		struct listener *l = &wd->listeners[n];
		struct listen_conf plain = { 0 };
		const struct listen_conf *lc = &plain;

		l->fd = inherited[i];
		l->index = n;
		l->inherited = true;
		if (sock_name(l->fd, l->address, sizeof(l->address),
		    &l->port) == -1) {
			log_warn("inherited socket %d", l->fd);
			close(l->fd);
			continue;
		}
		for (size_t j = 0; j < nconf; j++) {
			const struct listen_conf *c = &wd->conf.server.listen[j];

			if (!covered[j] && c->port == l->port &&
			    (strcmp(c->address, "*") == 0 ||
			    strcmp(c->address, l->address) == 0 ||
			    strcmp(l->address, "*") == 0)) {
				covered[j] = true;
				lc = c;
				break;
			}
		}
		n++;
		wd->nlisteners = n;
		if (listener_start(wd, l, lc) == -1)
			goto out;
	}
	for (size_t j = 0; j < nconf; j++) {
		const struct listen_conf *lc = &wd->conf.server.listen[j];
		struct listener *l = &wd->listeners[n];

		if (covered[j])
			continue;
		l->fd = -1;
		l->index = n;
		snprintf(l->address, sizeof(l->address), "%s", lc->address);
		l->port = lc->port;
		n++;
		wd->nlisteners = n;
		if (listener_start(wd, l, lc) == -1)
			goto out;
	}
	rc = 0;
out:
	free(covered);
	return rc;
}

/* Stop accepting: new connections are refused by the kernel. */
void
listeners_close(struct wsflowd *wd)
{
	for (size_t i = 0; i < wd->nlisteners; i++) {
		struct listener *l = &wd->listeners[i];

		if (l->wsi != NULL) {
			lws_sul_cancel(&l->sul_resume);
			lws_set_opaque_user_data(l->wsi, NULL);
			lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK,
			    LWS_TO_KILL_SYNC);
			l->wsi = NULL;
			l->fd = -1;
		}
	}
}
