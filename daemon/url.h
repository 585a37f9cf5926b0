/*
 * url.h — where peers are: ws:// and wss:// URLs, socket addresses.
 */
#ifndef WSFLOW_URL_H
#define WSFLOW_URL_H

#include <stdbool.h>
#include <stddef.h>

struct wsurl {
	bool	 tls;
	char	 host[256];	/* without [] for IPv6 literals */
	int	 port;
	char	 path[512];	/* starts with '/' */
};

/* 0, or -1 with a reason in *why. */
int	url_parse(const char *url, struct wsurl *, const char **why);

struct sockaddr_storage;

/* An IPv4/IPv6 socket address as text, without brackets, and its port;
 * -1 for any other family.  any: the unspecified address is "*". */
int	addr_format(const struct sockaddr_storage *, bool any, char *host,
	    size_t hostlen, int *port);

#endif
