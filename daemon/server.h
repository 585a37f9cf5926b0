/*
 * server.h — a server stream, whoever frames it: lws (server.c, TLS
 * listeners and framing = "lws") or wsflowd itself (wsserver.c, plain
 * listeners).  Both share the hashing, the digest queue and the registry.
 */
#ifndef WSFLOW_SERVER_H
#define WSFLOW_SERVER_H

#include "batch.h"
#include "upgrade.h"
#include "wsflowd.h"
#include "wsparse.h"

#define QUEUE_HIGH	8	/* digests queued: stop reading */
#define QUEUE_LOW	2	/* ... and read again */
/* A close we start ends the connection within this, whatever the peer. */
#define WSFLOW_CLOSE_DEADLINE_SECS	5
#define QUEUE_CAP	(2 * QUEUE_HIGH)	/* server_conn_allowance keeps
						 * every chunk within it */

/* What wsserver.c needs of a connection it frames itself. */
struct ws_raw {
	int		 fd;
	char		*head;		/* handshake octets so far */
	size_t		 head_len;
	struct ws_parser parser;
	uint8_t		*held;		/* input not parsed while paused */
	size_t		 held_len, held_off;
	char		*answer;	/* an HTTP answer (not a 101) */
	size_t		 answer_len, answer_off;
	uint8_t		 out[4 * (WS_SERVER_HEADER_MAX + 2 * EVP_MAX_MD_SIZE)];
	unsigned	 out_len, out_off;
	uint8_t		 pong[WS_CONTROL_MAX];
	unsigned	 pong_len;
	bool		 pong_due;
	bool		 upgraded;
	bool		 close_sent;	/* ours is out: read until theirs */
	bool		 hangup;	/* the stream is over: FIN after out */
	bool		 lingering;	/* FIN sent: read until theirs */
	bool		 reading;	/* rx flow on */
	int		 lowat;		/* SO_RCVLOWAT set, 0: never */
	uint16_t	 close_code;	/* owed after the digests */
	uint8_t		 close_payload[WS_CONTROL_MAX];
	unsigned	 close_len;
};

struct server_conn {
	struct stream	 s;		/* first: the registry sees this */
	struct worker	*w;
	struct lws	*wsi;
	struct batcher	 b;
	uint8_t		*queue;		/* ring of raw digests */
	unsigned	 qcap, qhead, qlen;
	int64_t		 last_rx_us;
	int64_t		 paused_at_us;
	bool		 open;		/* registered, batcher live */
	bool		 paused;	/* rx off: peer not reading digests */
	bool		 closing;	/* send close 1001 */
	bool		 raw;		/* framed by wsserver.c */
	struct ws_raw	 r;
	struct {			/* framed by lws: payload not yet fed */
		uint8_t	*buf;
		size_t	 len, off;
		unsigned flags;		/* of its last octet */
	}		 rest;
	uint8_t		 tx[LWS_PRE + 2 * EVP_MAX_MD_SIZE + 1];	/* + NUL */
};

int	server_path_mode(const char *path, enum wsflow_mode *);
void	server_peer_name(int fd, char *buf, size_t len);
int	server_conn_open(struct server_conn *, struct worker *, struct lws *,
	    enum wsflow_mode);
void	server_conn_close(struct server_conn *);
size_t	server_conn_allowance(const struct server_conn *, size_t len);
int	server_conn_data(struct server_conn *, const void *, size_t,
	    unsigned ws_chunk_flags);
void	server_conn_pause(struct server_conn *);
void	server_conn_resumed(struct server_conn *);
void	server_conn_digest_sent(struct server_conn *, const char *hex,
	    unsigned hexlen);

/* http.c */
int	http_answer(struct worker *, const struct upgrade *, unsigned status,
	    const char *why, char **out, size_t *outlen);

/* wsserver.c */
extern const struct lws_protocols wsserver_protocol;
int	wsserver_adopt(struct lws_vhost *, int fd);
void	wsserver_close(struct server_conn *, uint16_t code, const char *why);
void	wsserver_tick(struct server_conn *, int64_t now_us);

#endif
