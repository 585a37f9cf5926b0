/*
 * http.h — plain HTTP on the listeners: /healthz, /metrics and every
 * refusal of a handshake, for both server adapters.
 */
#ifndef WSFLOW_HTTP_H
#define WSFLOW_HTTP_H

#include <stddef.h>

#include <libwebsockets.h>

struct upgrade;
struct worker;

/* The whole answer (not a 101) to a request read by wsflowd itself. */
int	http_answer(struct worker *, const struct upgrade *, unsigned status,
	    const char *why, char **out, size_t *outlen);
/* LWS_CALLBACK_HTTP on a listener lws frames. */
int	http_serve(struct worker *, struct lws *, const char *path);

#endif
