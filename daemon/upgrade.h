/*
 * upgrade.h — the first request on a listener, read by wsflowd itself:
 * the WebSocket opening handshake (RFC 6455 §4.2) or a plain HTTP GET,
 * as pure logic.
 *
 * Every request gets its answer from wsflowd: a 101 for a valid upgrade
 * to one of its paths, /healthz and /metrics, or a refusal with an HTTP
 * status (docs/wire.md §2).  Nothing is handed on: a request is read whole, up
 * to its blank line, and any body it announces is refused, never parsed.
 */
#ifndef WSFLOW_UPGRADE_H
#define WSFLOW_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>

#define UPGRADE_HEAD_MAX	4096	/* a longer header block: 431 */
#define UPGRADE_PATH_MAX	128
#define UPGRADE_REPLY_MAX	448	/* 160, and a selected subprotocol */

enum upgrade_verdict {
	UPGRADE_MORE,		/* the header block is not complete yet */
	UPGRADE_OURS,		/* a valid upgrade: answer it with a 101 */
	UPGRADE_HTTP,		/* anything else: an HTTP answer */
};

enum upgrade_method {
	METHOD_GET,
	METHOD_HEAD,
	METHOD_OTHER,		/* POST, PUT, "get", ...: 405 */
};

/* What was read of a request; set whatever the verdict. */
struct upgrade {
	size_t		 head_len;	/* octets up to the blank line */
	unsigned	 refuse;	/* 400, 414, 431: unreadable as sent */
	const char	*why;		/* ... and why */
	enum upgrade_method method;
	bool		 http10;	/* HTTP/1.0 (else 1.1) */
	bool		 host;
	bool		 websocket;	/* Upgrade: websocket asked for */
	bool		 connection_upgrade;
	int		 version;	/* Sec-WebSocket-Version, -1: none */
	bool		 key_valid;
	bool		 body;		/* Content-Length > 0 or any
					 * Transfer-Encoding: refused */
	char		 path[UPGRADE_PATH_MAX];
	char		 key[32];	/* Sec-WebSocket-Key */
	char		 origin[128];	/* "" when none was sent */
	char		 protocols[256];	/* Sec-WebSocket-Protocol values
					 * offered, joined by ','; cut */
};

/* Look at the first len octets a client sent. */
enum upgrade_verdict upgrade_parse(const char *buf, size_t len,
	    struct upgrade *);

/*
 * The status a complete request gets before its resource is looked at:
 * 101 to upgrade, 200 to serve path as a plain GET or HEAD (which may
 * still be 404), or a refusal (400, 405, 426, 431).  ws_path: the path
 * names a server mode.  *why says what was wrong, for the body and log.
 */
unsigned upgrade_status(const struct upgrade *, enum upgrade_verdict,
	    bool ws_path, const char **why);

/*
 * The subprotocol to select: the first one the client offered that is
 * one of allowed's lines (server.subprotocols), into out; "" for none,
 * and always "" when allowed is NULL (interface spec §1).
 */
void	upgrade_subprotocol(const struct upgrade *, const char *allowed,
	    char *out, size_t outlen);

/* The 101 answer for u, selecting protocol unless it is ""; returns its
 * length, 0 if it does not fit. */
size_t	upgrade_reply(const struct upgrade *u, const char *protocol,
	    char *out, size_t outlen);

#endif
