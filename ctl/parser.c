/*
 * parser.c — turn "wsflowctl COMMAND [ARGS]" into a request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_proto.h"
#include "parser.h"

static const struct command {
	const char	*name;
	enum action	 action;
	const char	*args;
	const char	*help;
} commands[] = {
	{ "status", ACT_STATUS, "", "daemon, listeners and totals" },
	{ "streams", ACT_STREAMS, "[-a]", "one row per live stream (-a: "
	    "ended and configured too)" },
	{ "show", ACT_SHOW, "ID|NAME", "one stream in full" },
	{ "start", ACT_START, "NAME | URL [--mode M] [--bytes N] "
	    "[--duration S] [--rate R] [--name NAME]",
	    "start a configured or an ad-hoc producer" },
	{ "stop", ACT_STOP, "ID|NAME|all", "stop streams" },
	{ "digests", ACT_DIGESTS, "[ID|NAME]", "digest counters" },
	{ "reload", ACT_RELOAD, "", "reload the configuration" },
	{ "help", ACT_HELP, "", "this list" },
};
#define NCOMMANDS	(sizeof(commands) / sizeof(commands[0]))

/* The i-th command's name, arguments and one line of help; -1 past the end. */
int
command_info(size_t i, const char **name, const char **args,
    const char **help)
{
	if (i >= NCOMMANDS)
		return -1;
	*name = commands[i].name;
	*args = commands[i].args;
	*help = commands[i].help;
	return 0;
}

void
print_commands(FILE *f)
{
	fprintf(f, "commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-8s %-10s %s\n", commands[i].name,
		    strlen(commands[i].args) <= 10 ? commands[i].args : "...",
		    commands[i].help);
	fprintf(f, "  start    NAME | URL [--mode producer|streaming|frame|"
	    "message] [--bytes N]\n"
	    "                      [--duration S] [--rate R] [--name NAME]\n");
}

static const struct command *
match(const char *word, char *err, size_t errlen)
{
	const struct command *found = NULL;
	size_t n = strlen(word), hits = 0;

	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strcmp(word, commands[i].name) == 0)
			return &commands[i];
		if (n > 0 && strncmp(word, commands[i].name, n) == 0) {
			found = &commands[i];
			hits++;
		}
	}
	if (hits == 1)
		return found;
	snprintf(err, errlen, "%s command '%s'", hits ? "ambiguous" :
	    "unknown", word);
	return NULL;
}

static int
number(const char *opt, const char *s, uint64_t *out, char *err,
    size_t errlen)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (s == NULL || *s == '-' ||
	    ((v = strtoull(s, &end, 10)), errno != 0) || end == s ||
	    *end != '\0') {
		snprintf(err, errlen, "%s needs a non-negative integer", opt);
		return -1;
	}
	*out = v;
	return 0;
}

static int
set_key(struct parse_result *r, const char *s, char *err, size_t errlen)
{
	if (*s == '\0') {
		snprintf(err, errlen, "an empty ID or NAME names no stream");
		return -1;
	}
	if (ctl_strlcpy(r->key.key, s, sizeof(r->key.key)) == -1) {
		snprintf(err, errlen, "'%s' is too long", s);
		return -1;
	}
	return 0;
}

static int
parse_start(int argc, char *argv[], struct parse_result *r, char *err,
    size_t errlen)
{
	struct ctl_start *st = &r->start;
	const char *target = argv[0];
	uint64_t v;
	enum wsflow_mode mode;

	if (strncmp(target, "ws://", 5) != 0 &&
	    strncmp(target, "wss://", 6) != 0) {
		if (argc > 1) {
			snprintf(err, errlen, "options go with start URL, "
			    "not with a configured producer");
			return -1;
		}
		if (ctl_strlcpy(st->name, target, sizeof(st->name)) == -1) {
			snprintf(err, errlen, "name too long");
			return -1;
		}
		return 0;
	}
	if (ctl_strlcpy(st->url, target, sizeof(st->url)) == -1) {
		snprintf(err, errlen, "URL too long");
		return -1;
	}
	for (int i = 1; i < argc; i += 2) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] :
		    NULL;

		if (val == NULL) {
			snprintf(err, errlen, "%s needs a value", opt);
			return -1;
		}
		if (strcmp(opt, "--mode") == 0) {
			if (wsflow_mode_parse(val, &mode) == -1) {
				snprintf(err, errlen, "--mode: producer, "
				    "streaming, frame or message");
				return -1;
			}
			st->mode = mode;
			st->flags |= CTL_START_MODE;
		} else if (strcmp(opt, "--bytes") == 0) {
			if (number(opt, val, &st->bytes, err, errlen) == -1)
				return -1;
			st->flags |= CTL_START_BYTES;
		} else if (strcmp(opt, "--duration") == 0) {
			if (number(opt, val, &v, err, errlen) == -1)
				return -1;
			if (v > 86400ULL * 365) {
				snprintf(err, errlen, "--duration too long");
				return -1;
			}
			st->duration = (uint32_t)v;
			st->flags |= CTL_START_DURATION;
		} else if (strcmp(opt, "--rate") == 0) {
			if (number(opt, val, &st->rate, err, errlen) == -1)
				return -1;
			st->flags |= CTL_START_RATE;
		} else if (strcmp(opt, "--name") == 0) {
			if (ctl_strlcpy(st->name, val, sizeof(st->name)) ==
			    -1 || val[0] == '\0' || (val[0] >= '0' &&
			    val[0] <= '9')) {
				snprintf(err, errlen, "--name: 1..%d "
				    "characters, not starting with a digit",
				    CTL_NAME_MAX - 1);
				return -1;
			}
		} else {
			snprintf(err, errlen, "unknown option '%s'", opt);
			return -1;
		}
	}
	return 0;
}

int
parse(int argc, char *argv[], struct parse_result *r, char *err,
    size_t errlen)
{
	const struct command *c;

	memset(r, 0, sizeof(*r));
	if (argc < 1) {
		snprintf(err, errlen, "no command");
		return -1;
	}
	if ((c = match(argv[0], err, errlen)) == NULL)
		return -1;
	r->action = c->action;
	argc--;
	argv++;
	switch (c->action) {
	case ACT_SHOW:
	case ACT_STOP:
		if (argc != 1) {
			snprintf(err, errlen, "%s takes %s", c->name, c->args);
			return -1;
		}
		return set_key(r, argv[0], err, errlen);
	case ACT_STREAMS:
		/* -a: ended streams and idle configured producers too. */
		if (argc == 1 && (strcmp(argv[0], "-a") == 0 ||
		    strcmp(argv[0], "--all") == 0)) {
			r->all = 1;
			return 0;
		}
		if (argc != 0) {
			snprintf(err, errlen, "%s takes %s", c->name, c->args);
			return -1;
		}
		return 0;
	case ACT_DIGESTS:
		if (argc > 1) {
			snprintf(err, errlen, "%s takes %s", c->name, c->args);
			return -1;
		}
		return argc == 1 ? set_key(r, argv[0], err, errlen) : 0;
	case ACT_START:
		if (argc < 1) {
			snprintf(err, errlen, "start takes NAME or URL");
			return -1;
		}
		return parse_start(argc, argv, r, err, errlen);
	default:
		if (argc != 0) {
			snprintf(err, errlen, "%s takes no arguments",
			    c->name);
			return -1;
		}
		return 0;
	}
}
