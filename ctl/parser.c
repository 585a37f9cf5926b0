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
	{ "streams", ACT_STREAMS, "[-a] [--bits]", "one row per live stream "
	    "(-a: ended and configured too)" },
	{ "show", ACT_SHOW, "ID|NAME [--bits]", "one stream in full" },
	{ "start", ACT_START, "NAME|URL [options]",
	    "start a configured producer, or one to a URL" },
	{ "stop", ACT_STOP, "ID|NAME|all", "stop streams" },
	{ "digests", ACT_DIGESTS, "[ID|NAME]", "digest counters" },
	{ "reload", ACT_RELOAD, "", "reload the configuration" },
	{ "run", ACT_RUN, "NAME|URL [options]",
	    "a bounded test: intervals, then a summary" },
	{ "watch", ACT_WATCH, "[options]", "a live table of the streams" },
	{ "help", ACT_HELP, "", "this text" },
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

/* Each command once; start's options below the table, not as a row. */
void
print_usage(FILE *f)
{
	fprintf(f, "usage: wsflowctl [-hjV] [-s socket] command [args]\n\n"
	    "commands (any unambiguous prefix will do):\n");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		char both[64];

		snprintf(both, sizeof(both), "%s %s", commands[i].name,
		    commands[i].args);
		fprintf(f, "  %-26s %s\n", both, commands[i].help);
	}
	fprintf(f, "\nstart URL (ws:// or wss://) takes:\n"
	    "  --mode producer|streaming|frame|message\n"
	    "  --bytes N      stop after N octets (K, M, G: KiB, MiB, GiB)\n"
	    "  --duration S   stop after S seconds (or Nm, Nh)\n"
	    "  --rate R       octets per second (K, M, G: KiB, MiB, GiB)\n"
	    "  --name NAME    the producer's name (default adhoc-ID)\n"
	    "\nrun NAME|URL takes the same (with a NAME too), and:\n"
	    "  --parallel N   N streams (a NAME: instead of its parallel);\n"
	    "                 --bytes is their total, --rate each one's\n"
	    "  --interval S   a report every S seconds (default 1)\n"
	    "  --receiver SOCKET  the server is the wsflowd of this control\n"
	    "                 socket (this host): its figures in the summary\n"
	    "  --bits         rates in bits per second\n"
	    "  without --bytes or --duration a run lasts 10 s\n"
	    "\nwatch takes:\n"
	    "  --interval S   refresh every S seconds (default 1; 0.5, 2s, 1m)\n"
	    "  --count N      stop after N refreshes\n"
	    "  --bits         rates in bits per second\n"
	    "\noptions:\n"
	    "  -j, --json     print one JSON object\n"
	    "  -s, --socket   control socket (default %s)\n"
	    "  -h, --help     this text\n"
	    "  -V, --version  print the version\n"
	    "\nexit status: 0 ok, 1 the command failed, 2 usage error, "
	    "3 daemon not\nrunning or socket unreachable, 4 permission "
	    "denied.\n", WSFLOW_CTL_PATH);
}

static const struct command *
match(const char *word, char *err, size_t errlen)
{
	const struct command *found = NULL;
	size_t n = strlen(word), hits = 0;
	int len;

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
	if (hits == 0) {
		snprintf(err, errlen, "unknown command '%s' (see wsflowctl "
		    "help)", word);
		return NULL;
	}
	/* Name the candidates: the user then knows what to type. */
	len = snprintf(err, errlen, "ambiguous command '%s': ", word);
	for (size_t i = 0; i < NCOMMANDS && len >= 0 && (size_t)len < errlen;
	    i++)
		if (strncmp(word, commands[i].name, n) == 0)
			len += snprintf(err + len, errlen - (size_t)len,
			    "%s%s", commands[i].name, --hits > 0 ? ", " : "");
	return NULL;
}

struct unit {
	const char	*suffix;
	uint64_t	 mult;
};

/* Sizes and rates: binary multiples, as the spec's K, M, G (10k too). */
static const struct unit size_units[] = {
	{ "", 1 },
	{ "K", 1ULL << 10 }, { "k", 1ULL << 10 }, { "KiB", 1ULL << 10 },
	{ "M", 1ULL << 20 }, { "m", 1ULL << 20 }, { "MiB", 1ULL << 20 },
	{ "G", 1ULL << 30 }, { "g", 1ULL << 30 }, { "GiB", 1ULL << 30 },
	{ NULL, 0 }
};
static const struct unit count_units[] = {
	{ "", 1 },
	{ NULL, 0 }
};
static const struct unit time_units[] = {
	{ "", 1 }, { "s", 1 }, { "m", 60 }, { "h", 3600 },
	{ NULL, 0 }
};

/* A non-negative integer with one of units' suffixes, at most max. */
static int
scaled(const char *s, const struct unit *units, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	for (; units->suffix != NULL; units++)
		if (strcmp(end, units->suffix) == 0) {
			if (v > max / units->mult)
				return -1;
			*out = v * units->mult;
			return 0;
		}
	return -1;
}

static int
size_opt(const char *opt, const char *val, uint64_t *out, char *err,
    size_t errlen)
{
	char buf[32];
	size_t n = val != NULL ? strlen(val) : 0;

	/* A rate may say it is one: 10M/s. */
	if (strcmp(opt, "--rate") == 0 && n > 2 && n < sizeof(buf) &&
	    strcmp(val + n - 2, "/s") == 0) {
		memcpy(buf, val, n - 2);
		buf[n - 2] = '\0';
		val = buf;
	}
	if (scaled(val, size_units, INT64_MAX, out) == -1) {
		snprintf(err, errlen, "%s: '%s' is not a size: N, or N with K, "
		    "M or G (KiB, MiB, GiB)", opt, val != NULL ? val : "");
		return -1;
	}
	return 0;
}

static int
parse_start(int argc, char *argv[], struct parse_result *r, char *err,
    size_t errlen)
{
	int run = r->action == ACT_RUN;
	struct ctl_start *st = &r->start;
	const char *target = argv[0], *sep;
	uint64_t v;
	enum wsflow_mode mode;

	/* Anything with a scheme is a URL, even one we cannot use. */
	if ((sep = strstr(target, "://")) == NULL) {
		if (argc > 1 && !run) {
			snprintf(err, errlen, "options go with start URL, "
			    "not with a configured producer");
			return -1;
		}
		if (ctl_strlcpy(st->name, target, sizeof(st->name)) == -1) {
			snprintf(err, errlen, "name too long");
			return -1;
		}
		if (argc == 1)
			return 0;
	} else if (!((sep - target == 2 && strncmp(target, "ws", 2) == 0) ||
	    (sep - target == 3 && strncmp(target, "wss", 3) == 0))) {
		snprintf(err, errlen, "unsupported scheme '%.*s://': a "
		    "producer's URL starts with ws:// or wss://",
		    (int)(sep - target < 32 ? sep - target : 32), target);
		return -1;
	} else if (ctl_strlcpy(st->url, target, sizeof(st->url)) == -1) {
		snprintf(err, errlen, "URL too long");
		return -1;
	}
	for (int i = 1; i < argc; i++) {
		char opt[16];
		const char *val, *eq;

		/* --opt value, or --opt=value */
		if ((eq = strchr(argv[i], '=')) != NULL &&
		    strncmp(argv[i], "--", 2) == 0 &&
		    (size_t)(eq - argv[i]) < sizeof(opt)) {
			memcpy(opt, argv[i], (size_t)(eq - argv[i]));
			opt[eq - argv[i]] = '\0';
			val = eq + 1;
		} else {
			if (ctl_strlcpy(opt, argv[i], sizeof(opt)) == -1) {
				snprintf(err, errlen, "unknown option '%s'",
				    argv[i]);
				return -1;
			}
			val = i + 1 < argc ? argv[++i] : NULL;
		}
		if (strcmp(opt, "--mode") != 0 && strcmp(opt, "--bytes") != 0 &&
		    strcmp(opt, "--duration") != 0 &&
		    strcmp(opt, "--rate") != 0 && strcmp(opt, "--name") != 0 &&
		    !(run && (strcmp(opt, "--parallel") == 0 ||
		    strcmp(opt, "--interval") == 0 ||
		    strcmp(opt, "--receiver") == 0))) {
			snprintf(err, errlen, "unknown option '%s'", opt);
			return -1;
		}
		if (val == NULL) {
			snprintf(err, errlen, "%s needs a value", opt);
			return -1;
		}
		if (strcmp(opt, "--parallel") == 0) {
			if (scaled(val, size_units + 0, CTL_PARALLEL_MAX,
			    &v) == -1 || v == 0) {
				snprintf(err, errlen, "--parallel: 1 to %d "
				    "streams", CTL_PARALLEL_MAX);
				return -1;
			}
			r->run.parallel = (unsigned)v;
			/* NAME: the daemon starts the entry's N streams. */
			st->parallel = (uint32_t)v;
			st->flags |= CTL_START_PARALLEL;
		} else if (strcmp(opt, "--receiver") == 0) {
			if (val[0] == '\0') {
				snprintf(err, errlen, "--receiver: the path of "
				    "the server's wsflowd control socket");
				return -1;
			}
			r->run.receiver = val;
		} else if (strcmp(opt, "--interval") == 0) {
			char *end;
			double d = strtod(val, &end);

			if (end == val || (*end != '\0' && strcmp(end, "s") !=
			    0) || !(d >= 0.1 && d <= 3600)) {
				snprintf(err, errlen, "--interval: 0.1 to 3600 "
				    "seconds");
				return -1;
			}
			r->run.interval = d;
		} else if (strcmp(opt, "--mode") == 0) {
			if (wsflow_mode_parse(val, &mode) == -1) {
				snprintf(err, errlen, "--mode: producer, "
				    "streaming, frame or message");
				return -1;
			}
			st->mode = mode;
			st->flags |= CTL_START_MODE;
		} else if (strcmp(opt, "--bytes") == 0) {
			if (size_opt(opt, val, &st->bytes, err, errlen) == -1)
				return -1;
			st->flags |= CTL_START_BYTES;
		} else if (strcmp(opt, "--duration") == 0) {
			if (scaled(val, time_units, 86400ULL * 365, &v) ==
			    -1) {
				snprintf(err, errlen, "--duration: '%s' is not "
				    "a duration up to a year: N seconds, or N "
				    "with s, m or h", val);
				return -1;
			}
			st->duration = (uint32_t)v;
			st->flags |= CTL_START_DURATION;
		} else if (strcmp(opt, "--rate") == 0) {
			if (size_opt(opt, val, &st->rate, err, errlen) == -1)
				return -1;
			st->flags |= CTL_START_RATE;
		} else {
			if (ctl_strlcpy(st->name, val, sizeof(st->name)) ==
			    -1 || val[0] == '\0' || (val[0] >= '0' &&
			    val[0] <= '9')) {
				snprintf(err, errlen, "--name: 1..%d "
				    "characters, not starting with a digit",
				    CTL_NAME_MAX - 1);
				return -1;
			}
		}
	}
	return 0;
}

/* watch's interval: seconds with a fraction (0.5), or with s, m or h. */
static int
interval_opt(const char *val, uint64_t *ms)
{
	char *end;
	double v;

	/* Digits and a point only: strtod would take 1e3, 0x10 and inf. */
	if (val == NULL || strspn(val, "0123456789.") == 0)
		return -1;
	errno = 0;
	v = strtod(val, &end);
	if (errno != 0 || end != val + strspn(val, "0123456789."))
		return -1;
	for (const struct unit *u = time_units; u->suffix != NULL; u++)
		if (strcmp(end, u->suffix) == 0) {
			v *= (double)u->mult;
			/* 0.1 s at least: the daemon is asked twice a refresh. */
			if (v < 0.1 || v > 86400)
				return -1;
			*ms = (uint64_t)(v * 1000 + 0.5);
			return 0;
		}
	return -1;
}

static int
parse_watch(int argc, char *argv[], struct watch_opts *w, char *err,
    size_t errlen)
{
	w->interval_ms = 1000;
	for (int i = 0; i < argc; i++) {
		const char *opt = argv[i], *val = NULL, *eq;
		size_t olen = strlen(opt);

		if (strncmp(opt, "--", 2) == 0 && (eq = strchr(opt, '=')) !=
		    NULL) {
			olen = (size_t)(eq - opt);
			val = eq + 1;
		}
		if (olen == 6 && strncmp(opt, "--bits", 6) == 0 &&
		    val == NULL) {
			w->bits = 1;
			continue;
		}
		if (!(olen == 10 && strncmp(opt, "--interval", 10) == 0) &&
		    !(olen == 7 && strncmp(opt, "--count", 7) == 0)) {
			snprintf(err, errlen, "unknown option '%s' (watch "
			    "takes --interval S, --count N, --bits)", opt);
			return -1;
		}
		if (val == NULL && (val = i + 1 < argc ? argv[++i] : NULL) ==
		    NULL) {
			snprintf(err, errlen, "%.*s needs a value", (int)olen,
			    opt);
			return -1;
		}
		if (opt[2] == 'i' && interval_opt(val, &w->interval_ms) ==
		    -1) {
			snprintf(err, errlen, "--interval: '%s' is not a "
			    "duration from 0.1 s to a day: seconds (0.5), or "
			    "with s, m or h", val);
			return -1;
		}
		if (opt[2] == 'c' && (scaled(val, count_units, UINT32_MAX,
		    &w->count) == -1 || w->count == 0)) {
			snprintf(err, errlen, "--count: '%s' is not a number "
			    "of refreshes (1 or more)", val);
			return -1;
		}
	}
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
	/* "wsflowctl start --help" is a question, not a stream's name. */
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			r->action = ACT_HELP;
			return 0;
		}
	/* --bits: rates in bit/s wherever a table shows them (JSON keeps
	 * octets); anywhere among the command's arguments. */
	if (c->action == ACT_STREAMS || c->action == ACT_SHOW ||
	    c->action == ACT_RUN || c->action == ACT_WATCH) {
		int j = 0;

		for (int i = 0; i < argc; i++) {
			if (strcmp(argv[i], "--bits") == 0) {
				r->bits = 1;
				continue;
			}
			argv[j++] = argv[i];
		}
		argc = j;
	}
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
	case ACT_RUN:
		if (argc < 1) {
			snprintf(err, errlen, "run takes NAME or URL");
			return -1;
		}
		r->run.parallel = 1;
		r->run.interval = 1;
		if (parse_start(argc, argv, r, err, errlen) == -1)
			return -1;
		/* A URL's N streams are N starts of one each. */
		if (r->start.url[0] != '\0')
			r->start.flags &= ~(uint32_t)CTL_START_PARALLEL;
		r->run.limited = (r->start.flags & (CTL_START_BYTES |
		    CTL_START_DURATION)) != 0;
		if (!r->run.limited) {	/* as iperf3: 10 s */
			r->start.duration = 10;
			r->start.flags |= CTL_START_DURATION;
		}
		return 0;
	case ACT_WATCH:
		r->watch.bits = r->bits;
		return parse_watch(argc, argv, &r->watch, err, errlen);
	default:
		if (argc != 0) {
			snprintf(err, errlen, "%s takes no arguments",
			    c->name);
			return -1;
		}
		return 0;
	}
}
