/*
 * log.h — the daemon's logging: OpenBSD's log API, written to the journal
 * with structured fields, or to stderr (-d).
 *
 * The destination and level are process-wide (set once in main, like
 * lws's own log hook, which takes no context pointer).
 */
#ifndef WSFLOW_LOG_H
#define WSFLOW_LOG_H

#include <stdarg.h>
#include <stdint.h>
#include <syslog.h>

struct stream;

#define LOG_TO_STDERR	0
#define LOG_TO_JOURNAL	1

void	log_init(int dest, int level);
void	log_setlevel(int level);
int	log_getlevel(void);

/* Plain messages. */
void	log_err(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_notice(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));

/*
 * A message about one stream: adds WSFLOW_STREAM, WSFLOW_PEER,
 * WSFLOW_PRODUCER and (when event is not NULL) WSFLOW_EVENT.
 */
void	log_stream(int prio, const struct stream *, const char *event,
	    const char *, ...) __attribute__((format(printf, 4, 5)));

/*
 * A progress line: WSFLOW_EVENT=progress, WSFLOW_BYTES (octets so far),
 * WSFLOW_RATE (octets/s over the interval since the last one).
 */
void	log_progress(const struct stream *, uint64_t bytes, uint64_t rate,
	    const char *, ...) __attribute__((format(printf, 4, 5)));
/* A stream's end: WSFLOW_EVENT=stream-end, WSFLOW_END_REASON. */
void	log_stream_end(int prio, const struct stream *, const char *, ...)
	    __attribute__((format(printf, 3, 4)));

/* A message peers can provoke at will: rate limited. */
void	log_ratelimited(int prio, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

/* lws's log hook: one line, one LLL_ level bit. */
void	log_lws(int level, const char *line);
/* The last lws error/warning on this thread (then forgotten), or "". */
const char *log_lws_take(void);
int	log_lws_mask(int level);

#endif
