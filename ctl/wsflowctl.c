/*
 * wsflowctl — talk to wsflowd over its control socket.
 *
 *	wsflowctl [-hjV] [-s socket] command [args]
 *
 * Exit status: 0 ok, 1 the command failed, 2 usage, 3 daemon not
 * running or socket unreachable, 4 permission denied.  With -j a
 * failure's JSON "code" is the same number.
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "ctl_proto.h"
#include "output.h"
#include "parser.h"
#include "run.h"
#include "watch.h"


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
	case ACT_RUN:
		return cmd_run(path, &res, out);
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
