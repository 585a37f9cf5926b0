/*
 * server.h — the hashing server: one core, and the adapters that frame
 * its connections.
 *
 * The core (server.c) is what every server stream does whoever frames
 * it: payload -> batcher (running digest, cut at batch boundaries) ->
 * digest queue, the pause when a peer does not read its digests, the
 * counters, idle timeouts, stopping.  An adapter reads frames off its
 * socket, feeds the core, sends the queued digests and closes, through
 * a small table the core calls (struct server_io):
 *
 *   wsserver.c   wsflowd's own framing (ws.c, upgrade.c; tls.c over
 *                TLS): every listener by default;
 *   serverlws.c  lws's framing, kept as a reference: framing = "lws".
 */
#ifndef WSFLOW_SERVER_H
#define WSFLOW_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>
#include <openssl/ssl.h>

#include "batch.h"
#include "stream.h"

#define QUEUE_HIGH	8	/* digests queued: stop reading */
#define QUEUE_LOW	2	/* ... and read again */
#define QUEUE_CAP	(2 * QUEUE_HIGH)	/* server_conn_allowance keeps
						 * every chunk within it */
/* A close we start ends the connection within this, whatever the peer. */
#define WSFLOW_CLOSE_DEADLINE_SECS	5

struct worker;
struct server_conn;

/* What the core asks of the adapter that frames a connection. */
struct server_io {
	/* Start a close (after the digests owed), with a deadline; why is
	 * a string that lives on (a literal). */
	void	(*close)(struct server_conn *, uint16_t code, const char *why);
	/* Once a second, after the core's own tick; or NULL. */
	void	(*tick)(struct server_conn *, int64_t now_us);
};

struct server_conn {
	struct stream	 s;		/* first: the registry sees this */
	struct worker	*w;
	struct lws	*wsi;
	const struct server_io *io;
	struct batcher	 b;
	uint8_t		*queue;		/* ring of raw digests */
	unsigned	 qcap, qhead, qlen;
	int64_t		 last_rx_us;
	int64_t		 paused_at_us;
	bool		 open;		/* registered, batcher live */
	bool		 paused;	/* rx off: peer not reading digests */
	bool		 closing;	/* a close is under way */
};

int	server_path_mode(const char *path, enum wsflow_mode *);
bool	server_path_is(const char *path, const char *what);
bool	server_origin_allowed(const struct server_params *,
	    const char *origin);
void	server_peer_name(int fd, char *buf, size_t len);
void	server_socket_count(struct worker *, int delta);

int	server_conn_open(struct server_conn *, struct worker *, struct lws *,
	    enum wsflow_mode, const struct server_io *);
void	server_conn_close(struct server_conn *);
size_t	server_conn_allowance(const struct server_conn *, size_t len);
int	server_conn_data(struct server_conn *, const void *, size_t,
	    unsigned ws_chunk_flags);
void	server_conn_pause(struct server_conn *);
void	server_conn_resumed(struct server_conn *);
/* The oldest queued digest as hex (NUL-terminated): its length, 0 if
 * none; then, once it is out, server_conn_digest_sent. */
unsigned server_conn_next_digest(const struct server_conn *,
	    char hex[2 * EVP_MAX_MD_SIZE + 1]);
void	server_conn_digest_sent(struct server_conn *, const char *hex,
	    unsigned hexlen);

/* wsserver.c */
extern const struct lws_protocols wsserver_protocol;
int	wsserver_adopt(struct lws_vhost *, int fd, SSL_CTX *);

/* serverlws.c */
extern const struct lws_protocols serverlws_protocol;
int	serverlws_adopt(struct lws_vhost *, int fd);

#endif
