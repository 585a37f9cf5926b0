/*
 * log.c — journal or stderr, with the stream fields of wsflowd(8).
 */
#include <sys/uio.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#include <libwebsockets.h>

#include "log.h"
#include "stream.h"

#define RL_RATE		5	/* lines a second, sustained */
#define RL_BURST	20

/* Process-wide by nature: lws's emit hook cannot carry a context. */
static struct {
	pthread_mutex_t lock;	/* worker threads log too */
	int	dest;
	int	level;
	/* One bucket for what peers can make us say, per stream or lws. */
	double	tokens;
	int64_t	refill_ns;
	unsigned long suppressed;
} logger = { PTHREAD_MUTEX_INITIALIZER, LOG_TO_STDERR, LOG_INFO, RL_BURST,
    0, 0 };

/*
 * Peers decide how often streams open, close, misbehave: such lines are
 * rate limited (RL_RATE a second, bursts of RL_BURST) so that a flood of
 * bad connections cannot flood the journal.  What was dropped is counted
 * and said with the next line that passes.
 */
static bool
ratelimit_pass(void)
{
	struct timespec ts;
	int64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (logger.refill_ns != 0)
		logger.tokens += (double)(now - logger.refill_ns) * RL_RATE /
		    1e9;
	logger.refill_ns = now;
	if (logger.tokens > RL_BURST)
		logger.tokens = RL_BURST;
	if (logger.tokens < 1) {
		logger.suppressed++;
		return false;
	}
	logger.tokens -= 1;
	return true;
}

static const char *const prio_names[] = {
	"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"
};

void
log_init(int dest, int level)
{
	logger.dest = dest;
	logger.level = level;
}

void
log_setlevel(int level)
{
	logger.level = level;
}

int
log_getlevel(void)
{
	return logger.level;
}

static void
log_stderr(int prio, const char *msg)
{
	struct timespec ts;
	struct tm tm;
	char when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ld wsflowd %s: %s\n", when,
	    ts.tv_nsec / 1000000, prio_names[prio & 7], msg);
}

/* Fields a few events add: progress figures, how a stream ended. */
struct log_extra {
	bool		 progress;
	uint64_t	 bytes, rate;
	bool		 end;		/* WSFLOW_END_REASON */
};

/* "[producer 3 loop] " or "[stream 7] ": the text names its stream. */
static void
stream_prefix(const struct stream *s, char *buf, size_t len)
{
	snprintf(buf, len, "[%s %llu%s%s] ", s->role == ROLE_PRODUCER ?
	    "producer" : "stream", (unsigned long long)s->id,
	    s->name[0] ? " " : "", s->name);
}

/* One entry with only the fields that have a value. */
static int
journal_send(int prio, const struct stream *s, const char *event,
    const struct log_extra *x, const char *msg)
{
	char f[10][1100];
	struct iovec iov[10];
	int n = 0;

	snprintf(f[n++], sizeof(f[0]), "MESSAGE=%s", msg);
	snprintf(f[n++], sizeof(f[0]), "PRIORITY=%d", prio);
	snprintf(f[n++], sizeof(f[0]), "SYSLOG_IDENTIFIER=wsflowd");
	if (s != NULL) {
		snprintf(f[n++], sizeof(f[0]), "WSFLOW_STREAM=%llu",
		    (unsigned long long)s->id);
		if (s->peer[0] != '\0')
			snprintf(f[n++], sizeof(f[0]), "WSFLOW_PEER=%s",
			    s->peer);
		if (s->role == ROLE_PRODUCER)
			snprintf(f[n++], sizeof(f[0]), "WSFLOW_PRODUCER=%s",
			    s->name);
	}
	if (event != NULL)
		snprintf(f[n++], sizeof(f[0]), "WSFLOW_EVENT=%s", event);
	if (x != NULL && x->progress) {
		snprintf(f[n++], sizeof(f[0]), "WSFLOW_BYTES=%llu",
		    (unsigned long long)x->bytes);
		snprintf(f[n++], sizeof(f[0]), "WSFLOW_RATE=%llu",
		    (unsigned long long)x->rate);
	}
	if (x != NULL && x->end && s != NULL)
		snprintf(f[n++], sizeof(f[0]), "WSFLOW_END_REASON=%s",
		    s->end_reason);
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = f[i];
		iov[i].iov_len = strlen(f[i]);
	}
	return sd_journal_sendv(iov, n);
}

static void
vlog(int prio, const struct stream *s, const char *event,
    const struct log_extra *x, bool limited, const char *fmt, va_list ap)
{
	char msg[1200];
	size_t pre = 0;
	int saved = errno;

	if (prio > logger.level)
		return;
	pthread_mutex_lock(&logger.lock);
	if (limited) {
		unsigned long dropped = logger.suppressed;

		if (!ratelimit_pass()) {
			pthread_mutex_unlock(&logger.lock);
			return;
		}
		if (dropped > 0) {
			logger.suppressed = 0;
			snprintf(msg, sizeof(msg), "%lu log messages about "
			    "streams suppressed (rate limit)", dropped);
			if (logger.dest != LOG_TO_JOURNAL ||
			    journal_send(LOG_WARNING, NULL, "log-suppressed",
			    NULL, msg) < 0)
				log_stderr(LOG_WARNING, msg);
		}
	}
	/* The same text both ways: a journal line says its stream too. */
	if (s != NULL) {
		stream_prefix(s, msg, sizeof(msg));
		pre = strlen(msg);
	}
	vsnprintf(msg + pre, sizeof(msg) - pre, fmt, ap);
	/* Not asked for the journal, or none here: stderr. */
	if (logger.dest != LOG_TO_JOURNAL || journal_send(prio, s, event, x,
	    msg) < 0)
		log_stderr(prio, msg);
	pthread_mutex_unlock(&logger.lock);
	errno = saved;
}

#define LOGFN(fn, prio)						\
void									\
fn(const char *fmt, ...)						\
{									\
	va_list ap;							\
									\
	va_start(ap, fmt);						\
	vlog(prio, NULL, NULL, NULL, false, fmt, ap);			\
	va_end(ap);							\
}

LOGFN(log_err, LOG_ERR)
LOGFN(log_warnx, LOG_WARNING)
LOGFN(log_notice, LOG_NOTICE)
LOGFN(log_info, LOG_INFO)
LOGFN(log_debug, LOG_DEBUG)

/* log_warn: the message, then strerror(errno). */
void
log_warn(const char *fmt, ...)
{
	char msg[900];
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx("%s: %s", msg, strerror(saved));
	errno = saved;
}

void
log_stream(int prio, const struct stream *s, const char *event,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(prio, s, event, NULL, s != NULL, fmt, ap);
	va_end(ap);
}

/* Not rate limited: one a stream every 10 s, by the daemon's clock. */
void
log_progress(const struct stream *s, uint64_t bytes, uint64_t rate,
    const char *fmt, ...)
{
	struct log_extra x = { .progress = true, .bytes = bytes,
	    .rate = rate };
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, s, "progress", &x, false, fmt, ap);
	va_end(ap);
}

/* The stream's end, with WSFLOW_END_REASON (stream_set_end first). */
void
log_stream_end(int prio, const struct stream *s, const char *fmt, ...)
{
	struct log_extra x = { .end = true };
	va_list ap;

	va_start(ap, fmt);
	vlog(prio, s, "stream-end", &x, true, fmt, ap);
	va_end(ap);
}

void
log_ratelimited(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(prio, NULL, NULL, NULL, true, fmt, ap);
	va_end(ap);
}

/* Which lws levels to let through for our level. */
int
log_lws_mask(int level)
{
	int mask = LLL_ERR | LLL_WARN;

	/* lws's NOTICE is chatty at start-up; INFO and below flood. */
	if (level >= LOG_DEBUG)
		mask |= LLL_NOTICE | LLL_USER;
	return mask;
}

/*
 * The last error or warning lws logged on this thread: lws says why a TLS
 * handshake failed on a line of its own, before the connection error
 * that carries no reason.  The producer picks it up for its own line.
 */
static _Thread_local char lws_last[300];

const char *
log_lws_take(void)
{
	static _Thread_local char taken[sizeof(lws_last)];

	memcpy(taken, lws_last, sizeof(taken));
	lws_last[0] = '\0';
	return taken;
}

/*
 * Lines lws 4.1.6 logs as errors that are not: adopt_socket_readbuf()
 * says "calling service" each time wsserver.c hands it a request.
 */
static bool
lws_noise(const char *line)
{
	static const char *const noise[] = {
		"adopt_socket_readbuf: calling service",
		"adopt_socket_readbuf: deferring handling ah",
	};

	for (size_t i = 0; i < sizeof(noise) / sizeof(noise[0]); i++)
		if (strncmp(line, noise[i], strlen(noise[i])) == 0)
			return true;
	return false;
}

/*
 * Lines lws logs as errors that wsflowd says better itself, with the
 * stream, the peer and what to do (producer.c, serverlws.c): debug only.
 */
static bool
lws_restated(const char *line)
{
	static const char *const restated[] = {
		"SSL error: ",
		"lws_client_handshake: got bad HTTP response",
		"User code denied connection",
	};

	for (size_t i = 0; i < sizeof(restated) / sizeof(restated[0]); i++)
		if (strncmp(line, restated[i], strlen(restated[i])) == 0)
			return true;
	return false;
}

void
log_lws(int level, const char *line)
{
	char buf[300];
	size_t n;
	int prio;

	if (lws_noise(line))
		return;

	switch (level) {
	case LLL_ERR:
		prio = LOG_ERR;
		break;
	case LLL_WARN:
		prio = LOG_WARNING;
		break;
	case LLL_NOTICE:
		prio = LOG_NOTICE;
		break;
	case LLL_USER:
	case LLL_INFO:
		prio = LOG_INFO;
		break;
	default:
		prio = LOG_DEBUG;
		break;
	}
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	snprintf(buf, sizeof(buf), "%.*s", (int)n, line);
	if (level == LLL_ERR || level == LLL_WARN)
		snprintf(lws_last, sizeof(lws_last), "%s", buf);
	/* lws's errors are about one connection, not the daemon: demote. */
	if (prio < LOG_WARNING)
		prio = LOG_WARNING;
	if (lws_restated(buf))
		prio = LOG_DEBUG;
	if (prio <= logger.level)
		log_ratelimited(prio, "lws: %s", buf);
}
