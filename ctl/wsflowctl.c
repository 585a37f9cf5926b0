/*
 * wsflowctl — talk to wsflowd over its control socket.
 *
 *	wsflowctl [-hjV] [-s socket] command [args]
 *
 * Exit status: 0 ok, 1 the command failed, 2 usage, 3 daemon not
 * running or socket unreachable, 4 permission denied.  With -j a
 * failure's JSON "code" is the same number.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	text_bits = res.bits;

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
