/*
 * wsflowd.h — the daemon: one struct that holds everything a loop thread
 * needs, and the prototypes of each module, grouped by file.
 *
 * Nothing lives in file-scope globals (log.c's destination excepted), so
 * that several loop threads, each with its own struct wsflowd-like worker
 * and lws context, can come without a rewrite.
 */
#ifndef WSFLOWD_H
#define WSFLOWD_H

#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>
#include <openssl/evp.h>

#include "config.h"
#include "stream.h"

#define WSFLOW_VERSION		"0.1.0"

/* Receive sizing (lws notes §2.1): big reads, one shared buffer. */
#define WSFLOW_RX_CHUNK		65536
#define WSFLOW_PT_BUF		(256 * 1024)
#define WSFLOW_STOP_GRACE_US	(3 * LWS_US_PER_SEC)

struct listener {
	struct wsflowd	*wd;
	char		 address[64];
	char		 vhost_name[96];
	int		 port;
	bool		 tls;
	bool		 inherited;	/* from systemd: never unlink/close early */
	int		 fd;
	struct lws_vhost *vh;
	struct lws	*wsi;		/* the adopted listening socket */
	lws_sorted_usec_list_t sul_resume;	/* after EMFILE */
};

struct server_totals {
	uint64_t	 sockets;		/* accepted, not yet closed */
	uint64_t	 refused;		/* over max_connections */
	uint64_t	 connections;		/* open websocket streams */
	uint64_t	 connections_total;
	uint64_t	 bytes_received;
	uint64_t	 digests_sent;
	uint64_t	 messages;
};

struct producer_totals {
	uint64_t	 running;
	uint64_t	 bytes_sent;
	uint64_t	 digests_received;
	uint64_t	 digests_verified;
	uint64_t	 digest_mismatches;
};

struct producer;
TAILQ_HEAD(producer_list, producer);

struct wsflowd {
	struct wsflow_conf conf;
	const char	*conf_path;
	const EVP_MD	*md;		/* server.digest */
	struct lws_context *ctx;
	struct lws_vhost *local_vh;	/* signals, control, producers */
	const struct lws_protocols *local_protocols;
	struct {
		char	*ca;
		char	 name[32];
		struct lws_vhost *vh;
	}		 ca_vhosts[16];	/* client vhosts per private CA */
	size_t		 nca_vhosts;
	struct lws_protocols *listener_protocols;	/* shared by the vhosts */
	struct listener	*listeners;
	size_t		 nlisteners;
	struct stream_list streams;
	struct producer_list producers;
	uint64_t	 next_stream_id;
	struct server_totals server;
	struct producer_totals prod;
	int64_t		 started_us;
	lws_sorted_usec_list_t sul_tick;	/* 1 s housekeeping */
	lws_sorted_usec_list_t sul_stop;	/* graceful stop deadline */
	lws_sorted_usec_list_t sul_watchdog;
	uint64_t	 watchdog_usec;
	int64_t		 stop_deadline_us;
	struct lws	*ctl_wsi;	/* listening control socket */
	char		 ctl_path[108];	/* what we bound, to unlink */
	bool		 ctl_bound;
	bool		 ctl_inherited;
	unsigned	 ctl_conns;
	int		 log_floor;	/* from -v: reloads keep it */
	bool		 stopping;
	bool		 done;
	int		 exit_code;
};

/* wsflowd.c */
int	daemon_reload(struct wsflowd *, char *err, size_t errlen);

/* server.c */
extern const struct lws_protocols server_protocol;
void	server_stop_all(struct wsflowd *);
void	server_stream_close(struct stream *);
void	server_tick(struct wsflowd *, int64_t now_us);

/* http.c */
int	http_serve(struct wsflowd *, struct lws *, const char *path);

/* listen.c */
extern const struct lws_protocols acceptor_protocol;
int	listeners_open(struct wsflowd *, const int *inherited, size_t n);
void	listeners_close(struct wsflowd *);

/* producer.c */
extern const struct lws_protocols producer_protocol;
int	producers_autostart(struct wsflowd *);
void	producers_stop_all(struct wsflowd *);
void	producers_tick(struct wsflowd *, int64_t now_us);
void	producers_reload(struct wsflowd *, const struct wsflow_conf *,
	    unsigned *stopped, unsigned *started);

#endif
