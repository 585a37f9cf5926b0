/*
 * watch.h — wsflowctl watch, and the one thing it needs of main.
 */
#ifndef WSFLOWCTL_WATCH_H
#define WSFLOWCTL_WATCH_H

#include <stddef.h>

#include "output.h"
#include "parser.h"

/* Refresh until count, a signal or an error; the exit status. */
int	watch(const char *path, const struct watch_opts *,
	    const struct output *);

/* wsflowctl.c: one request, its replies to out; the exit status. */
int	ask(const char *path, unsigned type, const void *payload,
	    size_t plen, enum action, const struct output *);

#endif
