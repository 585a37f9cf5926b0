/*
 * daemon.h — the main thread's state: configuration, the registry of
 * streams, the workers, listeners and control socket, the stop.  One
 * struct, no file-scope globals (log.c's destination excepted).
 *
 * Header rule: each module's header declares its own API and structs;
 * this one holds only what the main thread owns, so that any module may
 * include it without depending on the modules above it.
 */
#ifndef WSFLOW_DAEMON_H
#define WSFLOW_DAEMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "config.h"
#include "live.h"
#include "stream.h"
#include "version.h"

#define WSFLOW_STOP_GRACE_US	(3 * LWS_US_PER_SEC)

struct worker;
struct listener;
struct group_progress;

struct wsflowd {
	struct wsflow_conf conf;
	const char	*conf_path;
	const EVP_MD	*md;		/* server.digest */
	struct lws_context *ctx;	/* the main thread's */
	struct lws_vhost *local_vh;	/* signals, control, acceptors */
	struct lws_protocols main_protocols[5];
	struct worker	*workers;
	unsigned	 nworkers;
	struct listener	*listeners;
	size_t		 nlisteners;
	unsigned	 fd_limit;	/* for each lws context's tables */
	struct registry	 reg;		/* every stream, and the totals */
	struct live	 live;		/* /live's snapshot, built once */

	int64_t		 started_us;
	struct group_progress *groups;	/* parallel entries' last figures */
	size_t		 ngroups;
	int64_t		 groups_at_us;	/* their last progress lines */
	lws_sorted_usec_list_t sul_tick;	/* 1 s housekeeping */
	lws_sorted_usec_list_t sul_stop;	/* graceful stop deadline */
	lws_sorted_usec_list_t sul_watchdog;
	uint64_t	 watchdog_usec;
	int64_t		 stall_us;	/* a worker this late is stuck */
	int64_t		 stop_deadline_us;
	struct lws	*ctl_wsi;	/* listening control socket */
	lws_sorted_usec_list_t sul_ctl_resume;	/* after EMFILE */
	char		 ctl_path[108];	/* what we bound, to unlink */
	bool		 ctl_bound;
	bool		 ctl_inherited;
	unsigned	 ctl_conns;
	int		 log_floor;	/* from -v: reloads keep it */
	atomic_bool	 stopping;
	bool		 done;
	int		 exit_code;
};

#endif
