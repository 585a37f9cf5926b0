/*
 * watch.h — wsflowctl watch.
 */
#ifndef WSFLOWCTL_WATCH_H
#define WSFLOWCTL_WATCH_H

#include <stddef.h>

#include "output.h"
#include "parser.h"

/* Refresh until count, a signal or an error; the exit status. */
int	watch(const char *path, const struct watch_opts *,
	    const struct output *);

#endif
