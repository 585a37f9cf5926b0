/*
 * listen.h — the WebSocket listeners: listening sockets made or
 * inherited, accepted connections handed to the least loaded worker,
 * the descriptor budget, and the acceptor helpers the control socket
 * shares.
 */
#ifndef WSFLOW_LISTEN_H
#define WSFLOW_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#include <libwebsockets.h>
#include <openssl/ssl.h>

#include "config.h"

struct wsflowd;

struct listener {
	struct wsflowd	*wd;
	size_t		 index;
	char		 address[64];
	int		 port;
	bool		 tls;
	char		*tls_cert;	/* the configured entry's, copied */
	char		*tls_key;
	SSL_CTX		*ssl_ctx;	/* TLS on our own framing, shared */
	bool		 inherited;	/* from systemd: never unlink/close early */
	int		 fd;
	struct lws	*wsi;		/* the adopted listening socket */
	lws_sorted_usec_list_t sul_resume;	/* after EMFILE */
	/* In each worker: a vhost for wsflowd's own framing, one for lws's
	 * (TLS, framing = "lws"), each with its adapter's protocol. */
	struct lws_vhost **vh_own, **vh_lws;
	char		(*vh_names)[2][96];	/* lws keeps name pointers */
	struct lws_protocols protocols[2][2];	/* and protocol arrays */
};

extern const struct lws_protocols acceptor_protocol;

int	listeners_open(struct wsflowd *, const int *inherited, size_t n);
int	listeners_attach(struct wsflowd *);	/* vhosts in every worker */
void	listeners_close(struct wsflowd *);
void	listeners_free(struct wsflowd *);
unsigned listen_fit_fds(struct wsflow_conf *);

bool	accept_out_of_room(int err);
void	accept_pause(struct lws_context *, struct lws *,
	    lws_sorted_usec_list_t *, sul_cb_t resume);

#endif
