/*
 * upgrade.h — the WebSocket opening handshake of a plain listener
 * (RFC 6455 §4.2), as pure logic.
 *
 * Only what is unmistakably a websocket upgrade to one of wsflowd's paths
 * is answered here; anything else (/healthz, /metrics, a refusal) goes to
 * lws, which answers it exactly as it does on TLS listeners.
 */
#ifndef WSFLOW_UPGRADE_H
#define WSFLOW_UPGRADE_H

#include <stddef.h>

#define UPGRADE_HEAD_MAX	4096	/* more: not ours, lws decides */
#define UPGRADE_PATH_MAX	128
#define UPGRADE_REPLY_MAX	160

enum upgrade_verdict {
	UPGRADE_MORE,		/* the header block is not complete yet */
	UPGRADE_OURS,		/* a valid upgrade: answer it */
	UPGRADE_LWS,		/* anything else: hand it to lws */
};

struct upgrade {
	size_t		 head_len;	/* octets up to the blank line */
	char		 path[UPGRADE_PATH_MAX];
	char		 key[32];	/* Sec-WebSocket-Key */
};

/* Look at the first len octets a client sent. */
enum upgrade_verdict upgrade_parse(const char *buf, size_t len,
	    struct upgrade *);

/* The 101 answer for u; returns its length, 0 if it does not fit. */
size_t	upgrade_reply(const struct upgrade *u, char *out, size_t outlen);

#endif
