/*
 * sd.h — what wsflowd tells systemd and takes from it: readiness, status,
 * the watchdog, reload/stop notices, and sockets passed by a socket unit.
 * Harmless no-ops when not run by systemd.
 */
#ifndef WSFLOW_SD_H
#define WSFLOW_SD_H

#include <stdbool.h>
#include <stddef.h>

struct wsflowd;

#define SD_MAX_FDS	16

/*
 * Sockets from systemd (LISTEN_FDS), by kind: one socket unit names all
 * its sockets alike, so a listening TCP socket is a WebSocket listener
 * and the listening AF_UNIX one is the control socket.
 */
struct sd_sockets {
	int	ws[SD_MAX_FDS];		/* TCP listeners */
	size_t	nws;
	int	control;		/* AF_UNIX listener, or -1 */
};

void	sd_sockets_take(struct sd_sockets *);
void	sd_refuse_pending(const char *why);
void	sd_ready(struct wsflowd *);
void	sd_watchdog_start(struct wsflowd *);
void	sd_status(struct wsflowd *);
void	sd_reloading(void);
void	sd_stopping(void);

#endif
