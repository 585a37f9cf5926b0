/*
 * client.c — wsflowctl's side of the control socket: connect, send a
 * request, read its replies one at a time (every command, run and watch
 * alike).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <sys/stat.h>

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "output.h"

#define REPLY_TIMEOUT_MS 15000

int
ctl_client_open(struct ctl_client *c, const char *path)
{
	struct sockaddr_un sun;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->seq = (uint32_t)getpid() << 8;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (ctl_strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		int saved = errno;

		close(c->fd);
		c->fd = -1;
		errno = saved;
		return -1;
	}
	return 0;
}

void
ctl_client_close(struct ctl_client *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
}

int
ctl_client_request(struct ctl_client *c, unsigned type, const void *payload,
    size_t len)
{
	uint8_t msg[CTL_MSG_MAX];
	const uint8_t *p = msg;
	size_t left = ctl_encode(msg, type, ++c->seq, payload, len);

	while (left > 0) {
		ssize_t n = send(c->fd, p, left, MSG_NOSIGNAL);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		left -= (size_t)n;
	}
	return 0;
}

/* Replies come from a daemon we trust, but are checked all the same. */
static void
terminate_strings(unsigned type, union ctl_reply *u)
{
	switch (type) {
	case CTL_REP_STATUS:
		u->st.version[sizeof(u->st.version) - 1] = '\0';
		u->st.digest[sizeof(u->st.digest) - 1] = '\0';
		u->st.conf_path[sizeof(u->st.conf_path) - 1] = '\0';
		break;
	case CTL_REP_LISTENER:
		u->l.address[sizeof(u->l.address) - 1] = '\0';
		break;
	case CTL_REP_STREAM:
		u->s.state[sizeof(u->s.state) - 1] = '\0';
		u->s.name[sizeof(u->s.name) - 1] = '\0';
		u->s.peer[sizeof(u->s.peer) - 1] = '\0';
		u->s.last_digest[sizeof(u->s.last_digest) - 1] = '\0';
		u->s.end_reason[sizeof(u->s.end_reason) - 1] = '\0';
		u->s.error[sizeof(u->s.error) - 1] = '\0';
		break;
	case CTL_REP_RESULT:
		u->r.message[sizeof(u->r.message) - 1] = '\0';
		break;
	default:
		break;
	}
}

int
ctl_client_reply(struct ctl_client *c, union ctl_reply *u, char *why,
    size_t whylen, int *status)
{
	for (;;) {
		struct pollfd pfd = { c->fd, POLLIN, 0 };
		struct ctl_hdr h;
		const char *bad = NULL;
		ssize_t n;
		int len;

		if ((len = ctl_frame_check(c->buf, c->have, &h, &bad)) > 0) {
			if (h.seq != c->seq || h.type < CTL_REP_STATUS ||
			    h.len - sizeof(h) > sizeof(*u)) {
				snprintf(why, whylen, "unexpected reply from "
				    "wsflowd");
				*status = EXIT_FAILED;
				return -1;
			}
			memset(u, 0, sizeof(*u));
			memcpy(u, c->buf + sizeof(h), h.len - sizeof(h));
			terminate_strings(h.type, u);
			memmove(c->buf, c->buf + len, c->have - (size_t)len);
			c->have -= (size_t)len;
			return h.type;
		}
		if (len < 0) {
			snprintf(why, whylen, "bad reply from wsflowd: %s", bad);
			*status = EXIT_FAILED;
			return -1;
		}
		if ((n = poll(&pfd, 1, REPLY_TIMEOUT_MS)) == 0) {
			snprintf(why, whylen, "no answer from wsflowd");
			*status = EXIT_NODAEMON;
			return -1;
		}
		if (n == -1 && errno == EINTR)
			continue;
		n = read(c->fd, c->buf + c->have, sizeof(c->buf) - c->have);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(why, whylen, "wsflowd closed the connection");
			*status = EXIT_NODAEMON;
			return -1;
		}
		c->have += (size_t)n;
	}
}

int
ctl_result_status(uint32_t code)
{
	return code == CTL_OK ? 0 : code == CTL_ERR_DENIED ? EXIT_DENIED :
	    EXIT_FAILED;
}

/* ---- the client as the commands use it: errors said on an output ---- */

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

/* Print the replies until END or RESULT; returns the exit status. */
static int
print_replies(struct ctl_client *c, enum action a, const struct output *out)
{
	union ctl_reply u;
	char why[128];
	int rc;

	for (;;) {
		switch (ctl_client_reply(c, &u, why, sizeof(why), &rc)) {
		case -1:
			out->error(why, rc);
			return rc;
		case CTL_REP_STATUS:
			out->status(&u.st);
			break;
		case CTL_REP_LISTENER:
			out->listener(&u.l);
			break;
		case CTL_REP_STREAM:
			out->stream(a, &u.s);
			break;
		case CTL_REP_END:
			return EXIT_SUCCESS;
		case CTL_REP_RESULT:
			rc = ctl_result_status(u.r.code);
			out->result(a, &u.r, rc);
			return rc;
		default:
			break;
		}
	}
}

/* Connect, or say why not: 0, or the exit status. */
int
ctl_connect_or_say(struct ctl_client *c, const char *path,
    const struct output *out)
{
	char err[CTL_URL_MAX + 128];
	int rc;

	if (ctl_client_open(c, path) == 0)
		return 0;
	rc = errno == EACCES || errno == EPERM ? EXIT_DENIED : EXIT_NODAEMON;
	if (rc == EXIT_DENIED)
		denied(path, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "connect: %s: %s%s", path,
		    strerror(errno), errno == ENOENT || errno == ECONNREFUSED ?
		    " (is wsflowd running?)" : "");
	out->error(err, rc);
	return rc;
}

/* One request on its own connection, its replies to out; the exit status. */
int
ask(const char *path, unsigned type, const void *payload, size_t plen,
    enum action a, const struct output *out)
{
	struct ctl_client c;
	char err[64];
	int rc;

	if ((rc = ctl_connect_or_say(&c, path, out)) != 0)
		return rc;
	if (ctl_client_request(&c, type, payload, plen) == -1) {
		snprintf(err, sizeof(err), "send: %s", strerror(errno));
		out->error(err, EXIT_NODAEMON);
		ctl_client_close(&c);
		return EXIT_NODAEMON;
	}
	rc = print_replies(&c, a, out);
	ctl_client_close(&c);
	return rc;
}
