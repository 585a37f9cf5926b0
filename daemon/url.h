/*
 * url.h — ws:// and wss:// URLs for producers.
 */
#ifndef WSFLOW_URL_H
#define WSFLOW_URL_H

#include <stdbool.h>

struct wsurl {
	bool	 tls;
	char	 host[256];	/* without [] for IPv6 literals */
	int	 port;
	char	 path[512];	/* starts with '/' */
};

/* 0, or -1 with a reason in *why. */
int	url_parse(const char *url, struct wsurl *, const char **why);

#endif
