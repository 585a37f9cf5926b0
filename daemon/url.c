/*
 * url.c — where peers are: split ws[s]://host[:port][/path] into its
 * parts, and write socket addresses as text.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

int
url_parse(const char *url, struct wsurl *u, const char **why)
{
	const char *p, *host, *end, *colon = NULL;
	size_t hlen;

	memset(u, 0, sizeof(*u));
	/* It goes into a request line and a Host header: nothing that
	 * could end or split them (RFC 3986 has no raw spaces either). */
	for (p = url; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			*why = "URL contains control characters or spaces";
			return -1;
		}
	if (strncmp(url, "ws://", 5) == 0) {
		p = url + 5;
		u->port = 80;
	} else if (strncmp(url, "wss://", 6) == 0) {
		p = url + 6;
		u->tls = true;
		u->port = 443;
	} else {
		*why = "scheme must be ws:// or wss://";
		return -1;
	}
	host = p;
	if (*p == '[') {			/* [v6]:port */
		host = ++p;
		if ((end = strchr(p, ']')) == NULL) {
			*why = "unterminated [address]";
			return -1;
		}
		hlen = (size_t)(end - host);
		p = end + 1;
		if (*p == ':')
			colon = p;
		else if (*p != '\0' && *p != '/' && *p != '?') {
			*why = "junk after ]";
			return -1;
		}
	} else {
		end = host + strcspn(host, ":/?");
		hlen = (size_t)(end - host);
		p = end;
		if (*p == ':')
			colon = p;
	}
	if (hlen == 0 || hlen >= sizeof(u->host)) {
		*why = "bad host";
		return -1;
	}
	memcpy(u->host, host, hlen);
	if (colon != NULL) {
		char *e;
		long port = strtol(colon + 1, &e, 10);

		if (e == colon + 1 || port < 1 || port > 65535 ||
		    (*e != '\0' && *e != '/' && *e != '?')) {
			*why = "bad port";
			return -1;
		}
		u->port = (int)port;
		p = e;
	}
	if (*p == '\0')
		strcpy(u->path, "/");
	else if (*p == '?') {
		if (strlen(p) + 2 > sizeof(u->path)) {
			*why = "path too long";
			return -1;
		}
		u->path[0] = '/';
		strcpy(u->path + 1, p);
	} else {
		if (strlen(p) + 1 > sizeof(u->path)) {
			*why = "path too long";
			return -1;
		}
		strcpy(u->path, p);
	}
	return 0;
}

int
addr_format(const struct sockaddr_storage *ss, bool any, char *host,
    size_t hostlen, int *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, (socklen_t)hostlen);
		*port = ntohs(sin->sin_port);
		if (any && sin->sin_addr.s_addr == htonl(INADDR_ANY))
			snprintf(host, hostlen, "*");
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 =
		    (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, (socklen_t)hostlen);
		*port = ntohs(sin6->sin6_port);
		if (any && IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
			snprintf(host, hostlen, "*");
	} else
		return -1;
	return 0;
}
