/*
 * run.h — wsflowctl run: start producers, follow them, sum them up.
 */
#ifndef WSFLOWCTL_RUN_H
#define WSFLOWCTL_RUN_H

#include "output.h"
#include "parser.h"

/* The run's exit status: 0 only when it completed, every digest verified. */
int	cmd_run(const char *path, const struct parse_result *,
	    const struct output *);

#endif
