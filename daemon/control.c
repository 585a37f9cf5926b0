/*
 * control.c — the control socket: wsflowctl's requests served on the
 * daemon's loop.
 *
 * A request is read whole (bounded), answered from the daemon's state,
 * and the reply written as the socket takes it.  Long listings are built
 * a batch at a time as the client reads them, so a slow or silent client
 * costs one small buffer and never blocks streaming.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "ctl_proto.h"
#include "daemon.h"
#include "listen.h"
#include "log.h"
#include "producer.h"
#include "reload.h"
#include "url.h"
#include "worker.h"

#define CTL_IN_MAX	(2 * CTL_MSG_MAX)
#define CTL_OUT_MAX	(32 * 1024)
#define CTL_IDLE_SECS	10	/* a silent client is dropped */
#define CTL_CONNS_MAX	64

struct ctl_conn {
	struct wsflowd	*wd;
	struct lws	*wsi;
	uid_t		 uid;
	bool		 may_change;	/* root or the control group */
	bool		 close_after;	/* flush, then close */
	bool		 counted;
	uint8_t		 in[CTL_IN_MAX];
	size_t		 inlen;
	/* a listing in progress: streams with id > cursor still to send */
	bool		 listing;
	int		 phase;		/* LIST_LIVE, ... */
	bool		 all;		/* streams -a: ended, configured too */
	uint64_t	 cursor;
	uint64_t	 hcursor;	/* ended: records with seq > hcursor */
	size_t		 pcursor;	/* configured: entries from here */
	uint32_t	 list_seq;
	char		 list_key[CTL_NAME_MAX];
	size_t		 outlen;
	uint8_t		 out[LWS_PRE + CTL_OUT_MAX];
};

static void	 ctl_process(struct ctl_conn *);

/* ---- replies ---- */

static int
reply(struct ctl_conn *c, unsigned type, uint32_t seq, const void *payload,
    size_t len)
{
	if (c->outlen + sizeof(struct ctl_hdr) + len > CTL_OUT_MAX)
		return -1;
	c->outlen += ctl_encode(c->out + LWS_PRE + c->outlen, type, seq,
	    payload, len);
	lws_callback_on_writable(c->wsi);
	return 0;
}

static void __attribute__((format(printf, 5, 6)))
result(struct ctl_conn *c, uint32_t seq, unsigned code, uint64_t id,
    const char *fmt, ...)
{
	struct ctl_result r;
	va_list ap;

	memset(&r, 0, sizeof(r));
	r.code = code;
	r.id = id;
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(r.message, sizeof(r.message), fmt, ap);
		va_end(ap);
	} else
		ctl_strlcpy(r.message, ctl_result_str(code), sizeof(r.message));
	(void)reply(c, CTL_REP_RESULT, seq, &r, sizeof(r));
}

/* A configured producer that is not running: listed, id 0. */
static void
configured_info(const struct producer_conf *pc, struct ctl_stream *o)
{
	memset(o, 0, sizeof(*o));
	o->role = ROLE_PRODUCER;
	o->mode = pc->mode;
	o->ended = 1;
	o->next_attempt_in_ms = -1;
	ctl_strlcpy(o->state, STREAM_STOPPED, sizeof(o->state));
	ctl_strlcpy(o->end_reason, "not running", sizeof(o->end_reason));
	ctl_strlcpy(o->name, pc->name, sizeof(o->name));
	ctl_strlcpy(o->peer, pc->url, sizeof(o->peer));
}

static bool
producer_live_locked(struct wsflowd *wd, const char *name)
{
	struct stream *s;

	TAILQ_FOREACH(s, &wd->reg.streams, entry)
		if (s->role == ROLE_PRODUCER && strcmp(s->name, name) == 0)
			return true;
	return false;
}

enum { LIST_LIVE, LIST_ENDED, LIST_CONFIGURED, LIST_DONE };

/*
 * Fill the output with the next streams of a listing, then END: live
 * streams in id order, then (streams -a) ended ones oldest first, then
 * configured producers that are not running.
 */
static void
listing_fill(struct ctl_conn *c)
{
	struct wsflowd *wd = c->wd;
	int64_t now = lws_now_usecs();
	struct ctl_stream o;
	struct stream *s, *only = NULL;
	bool full = false;

	pthread_mutex_lock(&wd->reg.lock);
	if (c->phase == LIST_LIVE) {
		if (c->list_key[0] != '\0' && (only =
		    stream_find_locked(&wd->reg, c->list_key)) == NULL)
			c->cursor = UINT64_MAX;		/* gone meanwhile */
		/* The registry is kept in id order: resume after it. */
		TAILQ_FOREACH(s, &wd->reg.streams, entry) {
			if (s->id <= c->cursor || (only != NULL && s != only))
				continue;
			stream_ctl_info(s, &o, now);
			if (reply(c, CTL_REP_STREAM, c->list_seq, &o,
			    sizeof(o)) == -1)
				break;	/* full: more at the next WRITEABLE */
			c->cursor = s->id;
		}
		full = s != NULL;
		if (!full)
			c->phase = c->all ? LIST_ENDED : LIST_DONE;
	}
	if (c->phase == LIST_ENDED) {
		for (unsigned i = 0; i < wd->reg.hist_len && !full; i++) {
			const struct stream_record *r =
			    history_at_locked(&wd->reg, i);

			if (r->seq <= c->hcursor)
				continue;
			record_ctl_info(r, &o);
			if (reply(c, CTL_REP_STREAM, c->list_seq, &o,
			    sizeof(o)) == -1)
				full = true;
			else
				c->hcursor = r->seq;
		}
		if (!full)
			c->phase = LIST_CONFIGURED;
	}
	if (c->phase == LIST_CONFIGURED) {
		for (; c->pcursor < wd->conf.nproducers && !full;
		    c->pcursor++) {
			const struct producer_conf *pc =
			    &wd->conf.producers[c->pcursor];

			if (producer_live_locked(wd, pc->name))
				continue;
			configured_info(pc, &o);
			if (reply(c, CTL_REP_STREAM, c->list_seq, &o,
			    sizeof(o)) == -1)
				full = true;
		}
		if (!full)
			c->phase = LIST_DONE;
	}
	pthread_mutex_unlock(&wd->reg.lock);
	if (c->phase == LIST_DONE && reply(c, CTL_REP_END, c->list_seq, NULL,
	    0) == 0)
		c->listing = false;
}

/*
 * show of a stream that is not live: the newest ended one of that id or
 * name, else a configured producer that is not running.  One reply.
 */
static bool
show_not_live(struct ctl_conn *c, uint32_t seq, const char *key)
{
	struct wsflowd *wd = c->wd;
	const struct stream_record *r;
	const struct producer_conf *pc;
	struct ctl_stream o;
	bool found = true;

	pthread_mutex_lock(&wd->reg.lock);
	if ((r = history_find_locked(&wd->reg, key)) != NULL)
		record_ctl_info(r, &o);
	else if ((pc = conf_find_producer(&wd->conf, key)) != NULL)
		configured_info(pc, &o);
	else
		found = false;
	pthread_mutex_unlock(&wd->reg.lock);
	if (found) {
		(void)reply(c, CTL_REP_STREAM, seq, &o, sizeof(o));
		(void)reply(c, CTL_REP_END, seq, NULL, 0);
	}
	return found;
}

/* ---- handlers ---- */

static void
do_status(struct ctl_conn *c, const struct ctl_hdr *h, const void *payload)
{
	struct wsflowd *wd = c->wd;
	struct ctl_status st;
	struct ctl_listener l;
	struct totals t;

	(void)payload;
	memset(&st, 0, sizeof(st));
	ctl_strlcpy(st.version, WSFLOW_VERSION, sizeof(st.version));
	ctl_strlcpy(st.digest, wd->conf.server.digest, sizeof(st.digest));
	ctl_strlcpy(st.conf_path, wd->conf_path, sizeof(st.conf_path));
	st.pid = (uint32_t)getpid();
	st.nlisteners = (uint32_t)wd->nlisteners;
	st.uptime_sec = (uint64_t)((lws_now_usecs() - wd->started_us) /
	    LWS_US_PER_SEC);
	st.batch_size = wd->conf.server.batch_size;
	pthread_mutex_lock(&wd->reg.lock);
	st.streams = wd->reg.nstreams;
	pthread_mutex_unlock(&wd->reg.lock);
	totals_get(&wd->reg, &t);
	st.workers = wd->nworkers;
	st.connections = t.connections;
	st.connections_total = t.connections_total;
	st.bytes_received = t.bytes_received;
	st.digests_sent = t.digests_sent;
	st.producers_running = t.running;
	st.bytes_sent = t.bytes_sent;
	st.digests_received = t.digests_received;
	st.digests_verified = t.digests_verified;
	st.digest_mismatches = t.digest_mismatches;
	(void)reply(c, CTL_REP_STATUS, h->seq, &st, sizeof(st));
	for (size_t i = 0; i < wd->nlisteners; i++) {
		memset(&l, 0, sizeof(l));
		ctl_strlcpy(l.address, wd->listeners[i].address,
		    sizeof(l.address));
		l.port = wd->listeners[i].port;
		l.tls = wd->listeners[i].tls;
		if (reply(c, CTL_REP_LISTENER, h->seq, &l, sizeof(l)) == -1)
			break;
	}
	(void)reply(c, CTL_REP_END, h->seq, NULL, 0);
}

static void
do_streams(struct ctl_conn *c, const struct ctl_hdr *h, const void *payload)
{
	const struct ctl_key *k = payload;
	struct stream *s = NULL;

	if (k->key[0] != '\0') {
		pthread_mutex_lock(&c->wd->reg.lock);
		s = stream_find_locked(&c->wd->reg, k->key);
		pthread_mutex_unlock(&c->wd->reg.lock);
		if (s == NULL && show_not_live(c, h->seq, k->key))
			return;
		if (s == NULL) {
			result(c, h->seq, CTL_ERR_NO_STREAM, 0, "no such "
			    "stream: %s", k->key);
			return;
		}
	}
	c->listing = true;
	c->phase = LIST_LIVE;
	c->all = h->type == CTL_REQ_STREAMS_ALL;
	c->cursor = c->hcursor = 0;
	c->pcursor = 0;
	c->list_seq = h->seq;
	memcpy(c->list_key, k->key, sizeof(c->list_key));
	listing_fill(c);
}

static void
do_start(struct ctl_conn *c, const struct ctl_hdr *h, const void *payload)
{
	const struct ctl_start *rq = payload;
	struct wsflowd *wd = c->wd;
	struct producer_conf pc;
	const struct producer_conf *cfg;
	struct wsurl u;
	const char *why;
	char err[WSFLOW_ERR_MAX];
	uint64_t id, running = 0;
	struct ctl_result r;
	int n;

	if (wd->stopping) {
		result(c, h->seq, CTL_ERR_STOPPING, 0, NULL);
		return;
	}
	if (rq->url[0] == '\0') {
		if ((cfg = conf_find_producer(&wd->conf, rq->name)) == NULL) {
			result(c, h->seq, CTL_ERR_NO_PRODUCER, 0, "no producer "
			    "named '%s' in %s", rq->name, wd->conf_path);
			return;
		}
		pc = *cfg;
		id = 0;		/* its streams' ids, in a row */
	} else {
		if (url_parse(rq->url, &u, &why) == -1) {
			result(c, h->seq, CTL_ERR_START, 0, "bad url: %s", why);
			return;
		}
		id = stream_new_id(&wd->reg);
		/* The defaults of a configured entry (no strings among them). */
		(void)conf_producer_defaults(&pc);
		pc.url = (char *)(uintptr_t)rq->url;
		if (rq->name[0] != '\0')
			ctl_strlcpy(pc.name, rq->name, sizeof(pc.name));
		else
			snprintf(pc.name, sizeof(pc.name), "adhoc-%llu",
			    (unsigned long long)id);
	}
	pc.autostart = true;
	if (rq->flags & CTL_START_MODE)
		pc.mode = (enum wsflow_mode)rq->mode;
	if (rq->flags & CTL_START_BYTES)
		pc.bytes = rq->bytes;
	if (rq->flags & CTL_START_DURATION)
		pc.duration = rq->duration;
	if (rq->flags & CTL_START_RATE)
		pc.rate = rq->rate;
	/* A configured entry's parallel, or wsflowctl run NAME --parallel;
	 * bytes is then their total, rate each one's (as configured). */
	if (rq->flags & CTL_START_PARALLEL)
		pc.parallel = rq->parallel;
	if ((n = producer_launch(wd, &pc, &id, &running, err,
	    sizeof(err))) == -1) {
		result(c, h->seq, running != 0 ? CTL_ERR_RUNNING :
		    CTL_ERR_START, running, "%s", err);
		return;
	}
	if (n > 1)
		log_notice("producer %s started as streams %llu to %llu by "
		    "uid %u", pc.name, (unsigned long long)id,
		    (unsigned long long)(id + (uint64_t)n - 1),
		    (unsigned)c->uid);
	else
		log_notice("producer %s started as stream %llu by uid %u",
		    pc.name, (unsigned long long)id, (unsigned)c->uid);
	/* The name alone: wsflowctl says "started producer ID NAME"; its
	 * streams are id .. id + count - 1. */
	memset(&r, 0, sizeof(r));
	r.code = CTL_OK;
	r.id = id;
	r.count = (uint32_t)n;
	ctl_strlcpy(r.message, pc.name, sizeof(r.message));
	(void)reply(c, CTL_REP_RESULT, h->seq, &r, sizeof(r));
}

static void
do_stop(struct ctl_conn *c, const struct ctl_hdr *h, const void *payload)
{
	const struct ctl_key *k = payload;
	struct wsflowd *wd = c->wd;
	struct stream *s, *only = NULL;
	bool all = strcmp(k->key, "all") == 0;
	unsigned n = 0;
	uint64_t id = 0;

	/* The owners stop them; the registry only says who they are. */
	pthread_mutex_lock(&wd->reg.lock);
	if (!all)
		only = stream_find_locked(&wd->reg, k->key);
	TAILQ_FOREACH(s, &wd->reg.streams, entry) {
		/* A name stops every stream of it (an entry's parallel). */
		if (!all && s != only && (only == NULL ||
		    strcmp(only->name, k->key) != 0 ||
		    strcmp(s->name, k->key) != 0 || s->role != only->role))
			continue;
		id = s->id;
		n++;
		log_stream(LOG_NOTICE, s, "stream-stop", "stopped by uid %u",
		    (unsigned)c->uid);
		worker_stop(s->owner, s->id, false);
	}
	pthread_mutex_unlock(&wd->reg.lock);
	/* A configured producer that is not running is stopped already. */
	if (n == 0 && !all && conf_find_producer(&wd->conf, k->key) != NULL) {
		result(c, h->seq, CTL_OK, 0, "producer %s is not running",
		    k->key);
		return;
	}
	if (n == 0 && !all) {
		result(c, h->seq, CTL_ERR_NO_STREAM, 0, "no such stream: %s",
		    k->key);
		return;
	}
	result(c, h->seq, CTL_OK, n == 1 ? id : 0, "%u stream%s stopping", n,
	    n == 1 ? "" : "s");
}

static void
do_reload(struct ctl_conn *c, const struct ctl_hdr *h, const void *payload)
{
	char err[WSFLOW_ERR_MAX], note[128];

	(void)payload;
	if (daemon_reload(c->wd, err, sizeof(err), note, sizeof(note)) == -1)
		result(c, h->seq, CTL_ERR_RELOAD, 0, "%s", err);
	else if (note[0] != '\0')
		result(c, h->seq, CTL_OK, 0, "configuration reloaded; changes "
		    "to %s take effect at restart", note);
	else
		result(c, h->seq, CTL_OK, 0, "configuration reloaded");
}

static const struct {
	unsigned	 type;
	bool		 changes;	/* needs may_change */
	void		(*fn)(struct ctl_conn *, const struct ctl_hdr *,
			    const void *);
} handlers[] = {
	{ CTL_REQ_STATUS, false, do_status },
	{ CTL_REQ_STREAMS, false, do_streams },
	{ CTL_REQ_DIGESTS, false, do_streams },
	{ CTL_REQ_STREAMS_ALL, false, do_streams },
	{ CTL_REQ_START, true, do_start },
	{ CTL_REQ_STOP, true, do_stop },
	{ CTL_REQ_RELOAD, true, do_reload },
};

/* Answer the complete requests in the input, one at a time. */
static void
ctl_process(struct ctl_conn *c)
{
	struct ctl_request rq;
	const char *why = NULL;
	int n, fatal;

	while (!c->listing && !c->close_after && c->outlen == 0 &&
	    (n = ctl_request_decode(c->in, c->inlen, &rq, &why, &fatal)) !=
	    0) {
		size_t i;

		if (n < 0 && fatal) {
			/* Framing is lost: say why, then hang up. */
			result(c, rq.hdr.seq, rq.hdr.version != CTL_VERSION ?
			    CTL_ERR_VERSION : CTL_ERR_BAD_REQUEST, 0, "%s",
			    why);
			c->close_after = true;
			return;
		}
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK,
		    CTL_IDLE_SECS);
		for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
			if (handlers[i].type == rq.hdr.type)
				break;
		if (n < 0 || i == sizeof(handlers) / sizeof(handlers[0]))
			result(c, rq.hdr.seq, CTL_ERR_BAD_REQUEST, 0, "%s",
			    why ? why : "not a request");
		else if (handlers[i].changes && !c->may_change)
			result(c, rq.hdr.seq, CTL_ERR_DENIED, 0, "permission "
			    "denied: root or group '%s' only",
			    c->wd->conf.control.group);
		else
			handlers[i].fn(c, &rq.hdr, &rq.u);
		n = (int)rq.hdr.len;
		memmove(c->in, c->in + n, c->inlen - (size_t)n);
		c->inlen -= (size_t)n;
	}
}

/* ---- connections ---- */

static bool
peer_may_change(struct wsflowd *wd, int fd, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t groups[256];
	struct group *gr;
	bool ok = false;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
		return false;
	*uid = cred.uid;
	if (cred.uid == 0)
		return true;
	if (wd->conf.control.group == NULL || wd->conf.control.group[0] == '\0'
	    || (gr = getgrnam(wd->conf.control.group)) == NULL)
		return false;
	if (cred.gid == gr->gr_gid)
		return true;
	len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
		for (size_t i = 0; i < len / sizeof(gid_t); i++)
			if (groups[i] == gr->gr_gid)
				ok = true;
	return ok;
}

static int
ctl_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct ctl_conn *c = user;
	struct wsflowd *wd = lws_context_user(lws_get_context(wsi));

	switch (reason) {
	case LWS_CALLBACK_RAW_ADOPT:
		c->wd = wd;
		c->wsi = wsi;
		c->uid = (uid_t)-1;		/* unknown until SO_PEERCRED */
		c->may_change = peer_may_change(wd, lws_get_socket_fd(wsi),
		    &c->uid);
		/* Idle clients cannot lock root out: the cap is for others. */
		if (wd->ctl_conns >= CTL_CONNS_MAX && c->uid != 0) {
			log_ratelimited(LOG_WARNING, "control: %u clients "
			    "connected, refusing uid %u", wd->ctl_conns,
			    (unsigned)c->uid);
			return -1;
		}
		wd->ctl_conns++;
		c->counted = true;
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, CTL_IDLE_SECS);
		return 0;

	case LWS_CALLBACK_RAW_RX:
		if (c->close_after)
			return 0;		/* ignore what follows garbage */
		if (c->inlen + len > sizeof(c->in)) {
			log_debug("control: client sent too much, closing");
			return -1;
		}
		memcpy(c->in + c->inlen, in, len);
		c->inlen += len;
		ctl_process(c);
		return 0;

	case LWS_CALLBACK_RAW_WRITEABLE:
		if (c->outlen > 0) {
			if (lws_write(wsi, c->out + LWS_PRE, c->outlen,
			    LWS_WRITE_RAW) < (int)c->outlen)
				return -1;
			c->outlen = 0;
		}
		if (c->listing)
			listing_fill(c);
		else if (c->close_after)
			return -1;
		else
			ctl_process(c);		/* pipelined requests */
		return 0;

	case LWS_CALLBACK_RAW_CLOSE:
		if (c != NULL && c->counted) {
			c->counted = false;
			wd->ctl_conns--;
		}
		return 0;

	default:
		return 0;
	}
}

const struct lws_protocols ctl_protocol = {
	.name = "wsflow-ctl",
	.callback = ctl_callback,
	.per_session_data_size = sizeof(struct ctl_conn),
	.rx_buffer_size = CTL_MSG_MAX,
};

/* ---- the listening socket ---- */

static void
ctl_accept_resume(lws_sorted_usec_list_t *sul)
{
	struct wsflowd *wd = lws_container_of(sul, struct wsflowd,
	    sul_ctl_resume);

	if (wd->ctl_wsi != NULL)
		lws_rx_flow_control(wd->ctl_wsi, 1 |
		    LWS_RXFLOW_REASON_FLAG_PROCESS_NOW);
}

static int
ctl_accept_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	struct wsflowd *wd = lws_context_user(lws_get_context(wsi));

	(void)user;
	(void)in;
	(void)len;
	if (reason == LWS_CALLBACK_RAW_CLOSE_FILE) {
		if (wd->ctl_wsi == wsi) {
			lws_sul_cancel(&wd->sul_ctl_resume);
			wd->ctl_wsi = NULL;
		}
		return 0;
	}
	if (reason != LWS_CALLBACK_RAW_RX_FILE)
		return 0;
	for (int i = 0; i < 8; i++) {
		lws_sock_file_fd_type fd;

		fd.sockfd = accept4(lws_get_socket_fd(wsi), NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd.sockfd == -1) {
			if (accept_out_of_room(errno)) {
				log_ratelimited(LOG_WARNING, "control socket: "
				    "accept: %s", strerror(errno));
				accept_pause(wd->ctx, wsi, &wd->sul_ctl_resume,
				    ctl_accept_resume);
			}
			break;
		}
		/* On failure (a client refused) lws has closed the fd. */
		(void)lws_adopt_descriptor_vhost(wd->local_vh,
		    LWS_ADOPT_SOCKET, fd, ctl_protocol.name, NULL);
	}
	return 0;
}

const struct lws_protocols ctl_accept_protocol = {
	.name = "wsflow-ctl-acceptor",
	.callback = ctl_accept_callback,
};

/* Is a daemon already answering on path? Then it is not ours to take. */
static int
socket_in_use(const char *path)
{
	struct sockaddr_un sun;
	int fd, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ctl_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	return rc == 0;
}

/*
 * The directory that holds the socket must be the daemon's own: owned by
 * it or root and writable by nobody else.  Otherwise a local user could
 * swap the fresh socket for a link before its owner and mode are set, or
 * plant something for us to remove.
 */
static int
ctl_dir_safe(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct stat st;

	ctl_strlcpy(dir, path, sizeof(dir));
	ctl_strlcpy(dir, dirname(dir), sizeof(dir));
	if (stat(dir, &st) == -1 && (errno != ENOENT ||
	    mkdir(dir, 0755) == -1 || stat(dir, &st) == -1)) {
		log_err("control socket directory %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err("control socket directory %s is not a directory: "
		    "refusing to use it", dir);
		return -1;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		log_err("control socket directory %s belongs to uid %u, not "
		    "to wsflowd (uid %u) or root: refusing to use it", dir,
		    (unsigned)st.st_uid, (unsigned)geteuid());
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		log_err("control socket directory %s is writable by group or "
		    "others (mode %04o): refusing to use it", dir,
		    (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* A stale socket of ours may go; anything else at path stays. */
static int
ctl_path_free(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == -1)
		return errno == ENOENT ? 0 : (log_err("control socket %s: %s",
		    path, strerror(errno)), -1);
	if (!S_ISSOCK(st.st_mode)) {
		log_err("control.path %s exists and is not a socket: refusing "
		    "to remove it", path);
		return -1;
	}
	if (socket_in_use(path) == 1) {
		log_err("control socket %s is in use: is another wsflowd "
		    "running?", path);
		return -1;
	}
	if (unlink(path) == -1 && errno != ENOENT) {
		log_err("control socket %s: cannot remove the stale one: %s",
		    path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Group and mode, set on the socket itself: never through a link.  Under
 * wsflow.service the socket is born in the group (Group=wsflow), and
 * chown is not even allowed (SystemCallFilter=~@privileged).
 */
static void
ctl_path_perms(struct wsflowd *wd, const char *path)
{
	const char *group = wd->conf.control.group;
	struct group *gr;
	struct stat st;

	if (group != NULL && group[0] != '\0') {
		if ((gr = getgrnam(group)) == NULL)
			log_warnx("control group '%s' does not exist: only "
			    "root may change things", group);
		else if (lstat(path, &st) == 0 && st.st_gid == gr->gr_gid)
			;		/* already */
		else if (lchown(path, (uid_t)-1, gr->gr_gid) == -1)
			log_warn("control socket: chown to group %s", group);
	}
	if (fchmodat(AT_FDCWD, path, wd->conf.control.mode,
	    AT_SYMLINK_NOFOLLOW) == -1)
		log_warn("control socket: chmod %s", path);
}

int
control_open(struct wsflowd *wd, int inherited_fd)
{
	const char *path = wd->conf.control.path;
	struct sockaddr_un sun;
	lws_sock_file_fd_type fd;
	mode_t old;

	if (inherited_fd >= 0) {
		fd.filefd = inherited_fd;
		wd->ctl_inherited = true;
		goto adopt;
	}
	if (ctl_dir_safe(path) == -1 || ctl_path_free(path) == -1)
		return -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ctl_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	if ((fd.filefd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		log_err("control socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0177);	/* no window where the socket is open to all */
	if (bind(fd.filefd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		log_err("control socket %s: %s", path, strerror(errno));
		close(fd.filefd);
		return -1;
	}
	umask(old);
	wd->ctl_bound = true;
	ctl_strlcpy(wd->ctl_path, path, sizeof(wd->ctl_path));
	ctl_path_perms(wd, path);
	if (listen(fd.filefd, SOMAXCONN) == -1) {
		log_err("control socket %s: listen: %s", path,
		    strerror(errno));
		close(fd.filefd);
		return -1;
	}
adopt:
	wd->ctl_wsi = lws_adopt_descriptor_vhost(wd->local_vh,
	    LWS_ADOPT_RAW_FILE_DESC, fd, ctl_accept_protocol.name, NULL);
	if (wd->ctl_wsi == NULL) {
		log_err("control socket: cannot poll it");
		return -1;
	}
	log_info("control socket %s%s", path, wd->ctl_inherited ?
	    " (from systemd)" : "");
	return 0;
}

/* Self-bound sockets are removed; one systemd gave us is not ours. */
void
control_close(struct wsflowd *wd)
{
	if (wd->ctl_bound && !wd->ctl_inherited)
		(void)unlink(wd->ctl_path);
	wd->ctl_bound = false;
}
