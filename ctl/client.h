/*
 * client.h — wsflowctl's side of the control socket: connect, send a
 * request, read its replies one at a time.
 */
#ifndef WSFLOWCTL_CLIENT_H
#define WSFLOWCTL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "ctl_proto.h"

#define EXIT_FAILED	1
#define EXIT_USAGE	2
#define EXIT_NODAEMON	3
#define EXIT_DENIED	4

union ctl_reply {
	struct ctl_status	 st;
	struct ctl_listener	 l;
	struct ctl_stream	 s;
	struct ctl_result	 r;
};

struct ctl_client {
	int		 fd;
	uint32_t	 seq;		/* of the request in flight */
	size_t		 have;
	uint8_t		 buf[2 * CTL_MSG_MAX];
};

/* 0, or -1 with errno (EACCES/EPERM: permission denied). */
int	ctl_client_open(struct ctl_client *, const char *path);
void	ctl_client_close(struct ctl_client *);
/* Send a request (a new sequence number): 0, or -1 with errno. */
int	ctl_client_request(struct ctl_client *, unsigned type,
	    const void *payload, size_t len);
/*
 * The next reply to it: its type (CTL_REP_*) with the payload in *u,
 * strings terminated; or -1 with what went wrong in why and the exit
 * status it brings in *status.
 */
int	ctl_client_reply(struct ctl_client *, union ctl_reply *u,
	    char *why, size_t whylen, int *status);
/* The exit status a result code brings. */
int	ctl_result_status(uint32_t code);

struct output;
enum action;
/* ctl_client_open, or the reason on out: 0, or the exit status. */
int	ctl_connect_or_say(struct ctl_client *, const char *path,
	    const struct output *);
/* One request on its own connection, its replies to out; the exit status. */
int	ask(const char *path, unsigned type, const void *payload, size_t plen,
	    enum action, const struct output *);

#endif
