/*
 * sd.c — the systemd side: sd_notify, the watchdog, socket activation.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "ctl_proto.h"
#include "daemon.h"
#include "log.h"
#include "sd.h"
#include "worker.h"

/*
 * Take the sockets systemd passed: TCP listeners serve WebSocket ("ws"),
 * the AF_UNIX one is the control socket ("control").  Anything else is
 * closed with a warning.
 */
void
sd_sockets_take(struct sd_sockets *out)
{
	char **names = NULL;
	int n;

	memset(out, 0, sizeof(*out));
	out->control = -1;
	if ((n = sd_listen_fds_with_names(1, &names)) <= 0)
		return;
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		const char *name = names && names[i] ? names[i] : "";
		bool is_unix = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) >
		    0;
		bool is_inet = sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1,
		    0) > 0;

		/* One socket unit names all its fds alike: go by kind. */
		if (is_unix && out->control == -1)
			out->control = fd;
		else if (is_inet && out->nws < SD_MAX_FDS)
			out->ws[out->nws++] = fd;
		else {
			log_warnx("systemd passed fd %d (%s) that is not a "
			    "listening ws or control socket: closing it", fd,
			    name[0] ? name : "unnamed");
			close(fd);
		}
	}
	for (int i = 0; names != NULL && i < n; i++)
		free(names[i]);
	free(names);
}

/* Each connection waiting on a passed socket, accepted and handed to fn. */
static void
drain(int lfd, void (*fn)(int, const char *), const char *why)
{
	int fd;

	if (fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) == -1)
		return;
	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) != -1) {
		fn(fd, why);
		close(fd);
	}
}

/* Wait a little for what the peer sent with its connect, and read it. */
static ssize_t
first_read(int fd, void *buf, size_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	if (poll(&pfd, 1, 500) != 1)
		return -1;
	return recv(fd, buf, len, MSG_DONTWAIT);
}

static void
refuse_ctl(int fd, const char *why)
{
	union {
		char		 buf[CTL_MSG_MAX];
		struct ctl_hdr	 h;
	} in;
	struct {
		struct ctl_hdr		h;
		struct ctl_result	r;
	} out;
	ssize_t n = first_read(fd, &in, sizeof(in));

	memset(&out, 0, sizeof(out));
	out.h.len = sizeof(out);
	out.h.version = CTL_VERSION;
	out.h.type = CTL_REP_RESULT;
	out.h.seq = n >= (ssize_t)sizeof(in.h) ? in.h.seq : 0;
	out.r.code = CTL_ERR_STOPPING;
	snprintf(out.r.message, sizeof(out.r.message), "wsflowd cannot "
	    "start: %s", why);
	(void)send(fd, &out, sizeof(out), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void
refuse_http(int fd, const char *why)
{
	static const char resp[] = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Connection: close\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 43\r\n\r\n"
	    "wsflowd cannot start: configuration error\r\n";
	char buf[4096];

	(void)why;		/* the file's name and line stay on the host */
	(void)first_read(fd, buf, sizeof(buf));
	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;		/* unread input would turn close into RST */
	(void)send(fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)shutdown(fd, SHUT_WR);
}

/*
 * wsflowd cannot start (a configuration error): answer every connection
 * that woke the socket units, then exit.  Left queued, each would start
 * the service again at once, and five failed starts in ten seconds would
 * take wsflow.socket down with the service.  wsflowctl gets the reason.
 */
void
sd_refuse_pending(const char *why)
{
	struct sd_sockets sds;

	sd_sockets_take(&sds);
	if (sds.control != -1)
		drain(sds.control, refuse_ctl, why);
	for (size_t i = 0; i < sds.nws; i++)
		drain(sds.ws[i], refuse_http, why);
}

static void
watchdog_ping(lws_sorted_usec_list_t *sul)
{
	struct wsflowd *wd = lws_container_of(sul, struct wsflowd,
	    sul_watchdog);

	/*
	 * Runs on the main loop: a stuck main loop stops the pings, and so
	 * does a stuck worker (its streams are lost until a restart).
	 */
	if (worker_stalled(wd, NULL) == -1)
		sd_notify(0, "WATCHDOG=1");
	lws_sul_schedule(wd->ctx, 0, &wd->sul_watchdog, watchdog_ping,
	    (lws_usec_t)wd->watchdog_usec / 2);
}

void
sd_ready(struct wsflowd *wd)
{
	sd_status(wd);
	sd_notifyf(0, "READY=1\nMAINPID=%ld", (long)getpid());
}

void
sd_watchdog_start(struct wsflowd *wd)
{
	uint64_t usec;

	if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2 * LWS_US_PER_MS) {
		wd->watchdog_usec = usec;
		if ((int64_t)usec / 2 > wd->stall_us)
			wd->stall_us = (int64_t)usec / 2;
		log_info("watchdog: pinging every %llu ms",
		    (unsigned long long)(usec / 2000));
		lws_sul_schedule(wd->ctx, 0, &wd->sul_watchdog, watchdog_ping,
		    (lws_usec_t)usec / 2);
	}
}

/* "2 streams, 1.2 GB hashed, 0 mismatches" — kept current by the tick. */
void
sd_status(struct wsflowd *wd)
{
	struct totals t;
	unsigned long long n;

	n = stream_count(&wd->reg);
	totals_get(&wd->reg, &t);
	sd_notifyf(0, "STATUS=%llu stream%s, %.1f GB hashed, %llu "
	    "mismatch%s", n, n == 1 ? "" : "s",
	    (double)(t.bytes_received + t.bytes_sent) / 1e9,
	    (unsigned long long)t.digest_mismatches,
	    t.digest_mismatches == 1 ? "" : "es");
}

void
sd_reloading(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000);
}

void
sd_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}
