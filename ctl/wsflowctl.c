/*
 * wsflowctl — talk to wsflowd over its control socket.
 *
 *	wsflowctl [-hjV] [-s socket] command [args]
 *
 * Exit status: 0 ok, 1 the command failed, 2 usage, 3 daemon not
 * running or socket unreachable, 4 permission denied.  With -j a
 * failure's JSON "code" is the same number.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_proto.h"
#include "output.h"
#include "parser.h"
#include "watch.h"

#define EXIT_FAILED	1
#define EXIT_USAGE	2
#define EXIT_NODAEMON	3
#define EXIT_DENIED	4
#define REPLY_TIMEOUT_MS 15000

static void __attribute__((noreturn))
usage(const struct output *out, const char *msg)
{
	if (out == &json_output) {	/* -j: an answer a script can read */
		out->head(ACT_NONE);
		out->error(msg != NULL ? msg : "usage error", EXIT_USAGE);
		out->tail(ACT_NONE);
	} else if (msg != NULL)
		fprintf(stderr, "wsflowctl: %s\n", msg);
	fprintf(stderr, "usage: wsflowctl [-hjV] [-s socket] command [args]"
	    "\n(wsflowctl --help lists the commands)\n");
	exit(EXIT_USAGE);
}

/* Who may connect: the socket's group is control.group (wsflowd sets it). */
static void
denied(const char *path, char *buf, size_t len)
{
	struct stat st;
	struct group *gr;

	if (stat(path, &st) == 0 && st.st_gid != 0 &&
	    (gr = getgrgid(st.st_gid)) != NULL)
		snprintf(buf, len, "%s: permission denied (members of group "
		    "%s may use wsflowctl)", path, gr->gr_name);
	else
		snprintf(buf, len, "%s: permission denied (root and members "
		    "of the control group may use wsflowctl)", path);
}

static int
connect_to(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (ctl_strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static int
send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Replies come from a daemon we trust, but are checked all the same. */
static void
terminate_strings(unsigned type, void *payload)
{
	struct ctl_status *st = payload;
	struct ctl_listener *l = payload;
	struct ctl_stream *s = payload;
	struct ctl_result *r = payload;

	switch (type) {
	case CTL_REP_STATUS:
		st->version[sizeof(st->version) - 1] = '\0';
		st->digest[sizeof(st->digest) - 1] = '\0';
		st->conf_path[sizeof(st->conf_path) - 1] = '\0';
		break;
	case CTL_REP_LISTENER:
		l->address[sizeof(l->address) - 1] = '\0';
		break;
	case CTL_REP_STREAM:
		s->state[sizeof(s->state) - 1] = '\0';
		s->name[sizeof(s->name) - 1] = '\0';
		s->peer[sizeof(s->peer) - 1] = '\0';
		s->last_digest[sizeof(s->last_digest) - 1] = '\0';
		s->end_reason[sizeof(s->end_reason) - 1] = '\0';
		s->error[sizeof(s->error) - 1] = '\0';
		break;
	case CTL_REP_RESULT:
		r->message[sizeof(r->message) - 1] = '\0';
		break;
	default:
		break;
	}
}

/* Read replies until END or RESULT; returns the exit status. */
static int
read_replies(int fd, uint32_t seq, enum action a, const struct output *out)
{
	static uint8_t buf[2 * CTL_MSG_MAX];
	size_t have = 0;
	unsigned streams = 0;

	for (;;) {
		struct ctl_hdr h;
		const char *why = NULL;
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t n;
		int len, rc;

		while ((len = ctl_frame_check(buf, have, &h, &why)) > 0) {
			union {
				struct ctl_status st;
				struct ctl_listener l;
				struct ctl_stream s;
				struct ctl_result r;
			} u;

			if (h.seq != seq || h.type < CTL_REP_STATUS) {
				out->error("unexpected reply from wsflowd",
				    EXIT_FAILED);
				return EXIT_FAILED;
			}
			memcpy(&u, buf + sizeof(h), h.len - sizeof(h));
			terminate_strings(h.type, &u);
			memmove(buf, buf + len, have - (size_t)len);
			have -= (size_t)len;
			switch (h.type) {
			case CTL_REP_STATUS:
				out->status(&u.st);
				break;
			case CTL_REP_LISTENER:
				out->listener(&u.l);
				break;
			case CTL_REP_STREAM:
				streams++;
				out->stream(a, &u.s);
				break;
			case CTL_REP_END:
				return EXIT_SUCCESS;
			case CTL_REP_RESULT:
				rc = u.r.code == CTL_OK ? EXIT_SUCCESS :
				    u.r.code == CTL_ERR_DENIED ? EXIT_DENIED :
				    EXIT_FAILED;
				out->result(a, &u.r, rc);
				return rc;
			default:
				break;
			}
		}
		if (len < 0) {
			char msg[128];

			snprintf(msg, sizeof(msg), "bad reply from wsflowd: %s",
			    why);
			out->error(msg, EXIT_FAILED);
			return EXIT_FAILED;
		}
		if ((n = poll(&pfd, 1, REPLY_TIMEOUT_MS)) == 0) {
			out->error("no answer from wsflowd", EXIT_NODAEMON);
			return EXIT_NODAEMON;
		}
		if (n == -1 && errno == EINTR)
			continue;
		n = read(fd, buf + have, sizeof(buf) - have);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			out->error("wsflowd closed the connection",
			    EXIT_NODAEMON);
			return EXIT_NODAEMON;
		}
		have += (size_t)n;
	}
}

/* One request on its own connection, its replies to out; the exit status. */
int
ask(const char *path, unsigned type, const void *payload, size_t plen,
    enum action a, const struct output *out)
{
	char err[CTL_URL_MAX + 128], msg[CTL_MSG_MAX];
	size_t len;
	int fd, rc;

	if ((fd = connect_to(path)) == -1) {
		rc = errno == EACCES || errno == EPERM ? EXIT_DENIED :
		    EXIT_NODAEMON;
		if (rc == EXIT_DENIED)
			denied(path, err, sizeof(err));
		else
			snprintf(err, sizeof(err), "connect: %s: %s%s", path,
			    strerror(errno), errno == ENOENT || errno ==
			    ECONNREFUSED ? " (is wsflowd running?)" : "");
		out->error(err, rc);
		return rc;
	}
	len = ctl_encode(msg, type, (uint32_t)getpid(), payload, plen);
	if (send_all(fd, msg, len) == -1) {
		snprintf(err, sizeof(err), "send: %s", strerror(errno));
		out->error(err, EXIT_NODAEMON);
		close(fd);
		return EXIT_NODAEMON;
	}
	rc = read_replies(fd, (uint32_t)getpid(), a, out);
	close(fd);
	return rc;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const struct output *out = &text_output;
	const char *path = WSFLOW_CTL_PATH;
	struct parse_result res;
	char err[CTL_URL_MAX + 128];
	const void *payload = NULL;
	size_t plen = 0;
	unsigned type;
	int ch, rc, help = 0, version = 0;

	/* "+": options end at the command (start URL has its own). */
	while ((ch = getopt_long(argc, argv, "+hjs:V", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'j':
			out = &json_output;
			break;
		case 's':
			path = optarg;
			break;
		case 'h':
			help = 1;
			break;
		case 'V':
			version = 1;
			break;
		default:
			usage(out, NULL);
		}
	}
	argc -= optind;
	argv += optind;
	/* -j after the command too: "wsflowctl streams -j" reads naturally. */
	for (int i = 0, j = 0; i <= argc; i++) {
		if (i < argc && (strcmp(argv[i], "-j") == 0 ||
		    strcmp(argv[i], "--json") == 0)) {
			out = &json_output;
			continue;
		}
		argv[j++] = argv[i];
		if (i == argc)
			argc = j - 1;
	}
	/* Asked for: stdout and 0, so that "wsflowctl --help | less" works. */
	if (version) {
		out->version();
		return EXIT_SUCCESS;
	}
	if (help) {
		out->help();
		return EXIT_SUCCESS;
	}
	if (parse(argc, argv, &res, err, sizeof(err)) == -1)
		usage(out, err);

	switch (res.action) {
	case ACT_HELP:
		out->help();
		return EXIT_SUCCESS;
	case ACT_STATUS:
		type = CTL_REQ_STATUS;
		break;
	case ACT_STREAMS:
	case ACT_SHOW:
		type = res.all ? CTL_REQ_STREAMS_ALL : CTL_REQ_STREAMS;
		payload = &res.key;
		plen = sizeof(res.key);
		break;
	case ACT_DIGESTS:
		type = CTL_REQ_DIGESTS;
		payload = &res.key;
		plen = sizeof(res.key);
		break;
	case ACT_START:
		type = CTL_REQ_START;
		payload = &res.start;
		plen = sizeof(res.start);
		break;
	case ACT_STOP:
		type = CTL_REQ_STOP;
		payload = &res.key;
		plen = sizeof(res.key);
		break;
	case ACT_RELOAD:
		type = CTL_REQ_RELOAD;
		break;
	case ACT_WATCH:
		return watch(path, &res.watch, out);
	default:
		usage(out, NULL);
	}

	out->head(res.action);
	rc = ask(path, type, payload, plen, res.action, out);
	out->tail(res.action);
	return rc;
}
