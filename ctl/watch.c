/*
 * watch.c — wsflowctl watch: ask wsflowd for its status and streams every
 * interval and show them: in place on a terminal (like top, never
 * scrolling), as plain snapshots to a pipe, one JSON line each with -j.
 */
#include <sys/ioctl.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "ctl_proto.h"
#include "output.h"
#include "parser.h"
#include "watch.h"

static volatile sig_atomic_t stopping, resized;

/* One refresh as ask() hands it over, through the collector below. */
static struct ctl_status status;
static struct ctl_listener *listeners;
static struct ctl_stream *streams;
static size_t nlisteners, nstreams, listeners_cap, streams_cap;
static char failure[CTL_URL_MAX + 256];

static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
on_winch(int sig)
{
	(void)sig;
	resized = 1;
}

/* Append one element to a growing array; -1 when memory runs out. */
static int
grow(void **a, size_t *n, size_t *cap, size_t size, const void *elem)
{
	if (*n == *cap) {
		size_t cap2 = *cap ? *cap * 2 : 16;
		void *a2 = reallocarray(*a, cap2, size);

		if (a2 == NULL)
			return -1;
		*a = a2;
		*cap = cap2;
	}
	memcpy((char *)*a + *n * size, elem, size);
	(*n)++;
	return 0;
}

static void
take_nothing(enum action a)
{
	(void)a;
}

static void
take_status(const struct ctl_status *st)
{
	status = *st;
}

static void
take_listener(const struct ctl_listener *l)
{
	if (grow((void **)&listeners, &nlisteners, &listeners_cap,
	    sizeof(*l), l) == -1 && failure[0] == '\0')
		snprintf(failure, sizeof(failure), "out of memory");
}

static void
take_stream(enum action a, const struct ctl_stream *s)
{
	(void)a;
	if (grow((void **)&streams, &nstreams, &streams_cap, sizeof(*s),
	    s) == -1 && failure[0] == '\0')
		snprintf(failure, sizeof(failure), "out of memory");
}

static void
take_error(const char *msg, int rc)
{
	(void)rc;
	snprintf(failure, sizeof(failure), "%s", msg);
}

/* A listing answers with a result only when it failed. */
static void
take_result(enum action a, const struct ctl_result *r, int rc)
{
	(void)a;
	if (r->code != CTL_OK)
		take_error(r->message[0] ? r->message :
		    ctl_result_str(r->code), rc);
}

static const struct output collector = {
	.head = take_nothing,
	.status = take_status,
	.listener = take_listener,
	.stream = take_stream,
	.result = take_result,
	.error = take_error,
	.tail = take_nothing,
};

/* status, then streams: two requests, as the commands of those names. */
static int
collect(const char *path)
{
	struct ctl_key all;
	int rc;

	nlisteners = nstreams = 0;
	failure[0] = '\0';
	memset(&all, 0, sizeof(all));
	if ((rc = ask(path, CTL_REQ_STATUS, NULL, 0, ACT_STATUS,
	    &collector)) == 0)
		rc = ask(path, CTL_REQ_STREAMS, &all, sizeof(all),
		    ACT_STREAMS, &collector);
	if (rc == 0 && failure[0] != '\0')	/* out of memory */
		rc = 1;
	return rc;
}

/*
 * A frame on the terminal: home, each line cut to the width and its old
 * rest erased, no more lines than the window has rows less one (the
 * cursor then stays on the screen: nothing scrolls), the rest of the
 * screen erased.  All in one write of stdout's buffer: no flicker.
 */
static void
present(const char *buf, size_t len)
{
	struct winsize ws;
	size_t rows = 24, cols = 80, total = 0, max;
	const char *p = buf, *end = buf + len;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) {
		rows = ws.ws_row;
		cols = ws.ws_col > 0 ? ws.ws_col : 80;
	}
	max = rows > 1 ? rows - 1 : 1;
	for (const char *q = buf; q < end; q++)
		total += *q == '\n';
	fputs("\033[H", stdout);
	for (size_t line = 0; line < max && p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t width = 0;

		if (nl == NULL)
			nl = end;
		if (line == max - 1 && total > max) {
			printf("... %zu more lines", total - line);
			p = end;
		} else {
			/* The last column stays free: no pending wrap. */
			for (; p < nl; p++) {
				/* UTF-8: count characters, not octets */
				if (((unsigned char)*p & 0xc0) != 0x80 &&
				    ++width >= cols)
					break;
				/* a name's control octet moves no cursor */
				putchar((unsigned char)*p < 0x20 || *p == 0x7f ?
				    '?' : *p);
			}
			p = nl < end ? nl + 1 : end;
		}
		fputs("\033[K\n", stdout);
	}
	fputs("\033[J", stdout);
}

static void
show(const struct output *out, int tty, unsigned long n,
    const struct snapshot *sn)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if (tty && (f = open_memstream(&buf, &len)) != NULL) {
		out->snapshot(f, sn);
		if (fclose(f) == 0)
			present(buf, len);
		free(buf);
	} else {
		if (out == &text_output && n > 1)
			putchar('\n');	/* snapshots apart */
		out->snapshot(stdout, sn);
	}
	fflush(stdout);
}

static double
secs(const struct timespec *ts)
{
	return (double)ts->tv_sec + ts->tv_nsec / 1e9;
}

/* Sleep until the monotonic time t, open to signals: 0, or -1 if one came. */
static int
sleep_until(const struct timespec *t, const sigset_t *asleep)
{
	struct timespec now, left;

	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec &&
		    now.tv_nsec >= t->tv_nsec))
			return 0;
		left.tv_sec = t->tv_sec - now.tv_sec;
		left.tv_nsec = t->tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000;
		}
		if (ppoll(NULL, 0, &left, asleep) == -1 && errno == EINTR)
			return -1;
	}
}

int
watch(const char *path, const struct watch_opts *w, const struct output *out)
{
	struct sigaction sa;
	sigset_t block, orig, asleep;
	struct ctl_status shown[2];	/* this refresh's and the last one's */
	struct snapshot sn;
	struct timespec next, now, real, last = { 0, 0 };
	int tty = out == &text_output && isatty(STDOUT_FILENO), rc = 0;

	/*
	 * Signals come only while asleep (sleep_until): none is lost
	 * between the look at the flags and the sleep, none cuts a request.
	 */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGWINCH);
	sigprocmask(SIG_BLOCK, &block, &orig);
	asleep = orig;
	sigdelset(&asleep, SIGINT);
	sigdelset(&asleep, SIGTERM);
	sigdelset(&asleep, SIGHUP);
	sigdelset(&asleep, SIGWINCH);
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (tty) {
		sa.sa_handler = on_winch;
		sigaction(SIGWINCH, &sa, NULL);
		/* A frame goes out in one piece, and without a cursor. */
		setvbuf(stdout, NULL, _IOFBF, 1 << 18);
		fputs("\033[?25l", stdout);
	}
	memset(&sn, 0, sizeof(sn));
	sn.bits = w->bits;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (unsigned long n = 1; !stopping; n++) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		clock_gettime(CLOCK_REALTIME, &real);
		if ((rc = collect(path)) != 0) {
			if (out == &json_output) {	/* a last line */
				out->head(ACT_NONE);
				out->error(failure, rc);
				out->tail(ACT_NONE);
			} else
				out->error(failure, rc);
			break;
		}
		shown[n % 2] = status;
		if (n > 1) {
			sn.prev = &shown[(n - 1) % 2];
			sn.elapsed = secs(&now) - secs(&last);
		}
		last = now;
		sn.time = secs(&real);
		sn.status = &shown[n % 2];
		sn.listeners = listeners;
		sn.nlisteners = nlisteners;
		sn.streams = streams;
		sn.nstreams = nstreams;
		show(out, tty, n, &sn);
		if (w->count != 0 && n >= w->count)
			break;
		/* Every interval from the first, or from now when late. */
		next.tv_sec += (time_t)(w->interval_ms / 1000);
		next.tv_nsec += (long)(w->interval_ms % 1000) * 1000000;
		if (next.tv_nsec >= 1000000000) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (secs(&next) < secs(&now))
			next = now;
		while (!stopping && sleep_until(&next, &asleep) == -1)
			if (resized) {		/* the same data, new size */
				resized = 0;
				show(out, tty, n, &sn);
			}
	}
	sigprocmask(SIG_SETMASK, &orig, NULL);
	if (tty) {
		fputs("\033[?25h", stdout);
		fflush(stdout);
	}
	free(listeners);
	free(streams);
	return rc;
}
