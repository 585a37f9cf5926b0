/*
 * control.h — the control socket served on the daemon's loop.
 */
#ifndef WSFLOW_CONTROL_H
#define WSFLOW_CONTROL_H

#include <libwebsockets.h>

struct wsflowd;

extern const struct lws_protocols ctl_protocol;
extern const struct lws_protocols ctl_accept_protocol;

/* inherited_fd: a listening socket from systemd, or -1 to bind. */
int	control_open(struct wsflowd *, int inherited_fd);
void	control_close(struct wsflowd *);

#endif
