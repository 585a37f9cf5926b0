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
};

/* run: the start request for each stream, and how to follow them. */
struct run_opts {
	unsigned	 parallel;	/* streams, 1 and up */
	double		 interval;	/* seconds between reports */
	int		 limited;	/* --bytes or --duration given */
};

struct parse_result {
	enum action	 action;
	struct ctl_key	 key;		/* show, stop, digests */
	int		 all;		/* streams -a */
	struct ctl_start start;
	struct run_opts	 run;
};

/* 0, or -1 with a message in err (a usage error: exit 2). */
int	parse(int argc, char *argv[], struct parse_result *, char *err,
	    size_t errlen);
void	print_usage(FILE *);
int	command_info(size_t i, const char **name, const char **args,
	    const char **help);

#endif
