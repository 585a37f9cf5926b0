/*
 * reload.h — a new configuration, applied without touching what did not
 * change (SIGHUP and wsflowctl reload).
 */
#ifndef WSFLOW_RELOAD_H
#define WSFLOW_RELOAD_H

#include <stddef.h>

struct wsflowd;

int	daemon_reload(struct wsflowd *, char *err, size_t errlen, char *note,
	    size_t notelen);

#endif
