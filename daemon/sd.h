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

/* Sockets from systemd (LISTEN_FDS), by FileDescriptorName. */
struct sd_sockets {
	int	ws[SD_MAX_FDS];		/* "ws" (or unnamed TCP) */
	size_t	nws;
	int	control;		/* "control", or -1 */
};

void	sd_sockets_take(struct sd_sockets *);
void	sd_ready(struct wsflowd *);
void	sd_watchdog_start(struct wsflowd *);
void	sd_status(struct wsflowd *);
void	sd_reloading(void);
void	sd_stopping(void);

#endif
