/*
 * parser.h — wsflowctl's command line: commands as words, unambiguous
 * prefixes accepted (bgpctl style).
 */
#ifndef WSFLOWCTL_PARSER_H
#define WSFLOWCTL_PARSER_H

#include "ctl_proto.h"

enum action {
	ACT_NONE,
	ACT_STATUS,
	ACT_STREAMS,
	ACT_SHOW,
	ACT_START,
	ACT_STOP,
	ACT_DIGESTS,
	ACT_RELOAD,
	ACT_HELP,
	ACT_RUN,
	ACT_WATCH,
};

/* run: the start request for each stream, and how to follow them. */
struct run_opts {
	unsigned	 parallel;	/* streams, 1 and up */
	double		 interval;	/* seconds between reports */
	int		 limited;	/* --bytes or --duration given */
	const char	*receiver;	/* --receiver: the control socket of
					 * the wsflowd that is the server */
};

/* watch: how often, how many times, and in which unit rates show. */
struct watch_opts {
	uint64_t	 interval_ms;	/* default 1000 */
	uint64_t	 count;		/* 0: until interrupted */
	int		 bits;		/* text: rates in bit/s */
};

struct parse_result {
	enum action	 action;
	struct ctl_key	 key;		/* show, stop, digests */
	int		 all;		/* streams -a */
	struct ctl_start start;
	struct run_opts	 run;
	struct watch_opts watch;
	int		 bits;		/* --bits: text rates in bit/s */
};

/* 0, or -1 with a message in err (a usage error: exit 2). */
int	parse(int argc, char *argv[], struct parse_result *, char *err,
	    size_t errlen);
void	print_usage(FILE *);
int	command_info(size_t i, const char **name, const char **args,
	    const char **help);

#endif
