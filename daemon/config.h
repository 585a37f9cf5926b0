/*
 * config.h — wsflowd's configuration (libconfig), parsed and validated in
 * full before anything uses it, so that a reload can be refused whole.
 */
#ifndef WSFLOW_CONFIG_H
#define WSFLOW_CONFIG_H

#include <sys/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSFLOW_CONF_DEFAULT	"/etc/wsflow/wsflow.conf"
#define WSFLOW_NAME_MAX		64	/* producer and stream names, with NUL */
#define WSFLOW_ERR_MAX		512	/* "file:line: message" */

/* How data is cut into digests, both on the server and in producers. */
enum wsflow_mode {
	MODE_PRODUCER,		/* producers only: one endless message */
	MODE_STREAMING,		/* digest every batch_size octets */
	MODE_FRAME,		/* digest after every frame */
	MODE_MESSAGE,		/* digest after every message */
};

struct listen_conf {
	char		*address;	/* numeric IPv4/IPv6, or "*" */
	int		 port;
	char		*tls_cert;	/* NULL: plain ws */
	char		*tls_key;
	int		 line;
};

struct producer_conf {
	char		 name[WSFLOW_NAME_MAX];
	char		*url;
	enum wsflow_mode mode;
	bool		 autostart;
	uint32_t	 frame_size;
	uint64_t	 message_size;
	uint64_t	 rate;		/* octets/s, 0 = backpressure only */
	uint64_t	 bytes;		/* 0 = endless */
	uint32_t	 duration;	/* seconds, 0 = endless */
	bool		 reconnect;
	uint64_t	 batch_size;	/* 0: the server's batch_size */
	bool		 lws_framing;	/* framing = "lws": stock lws_write */
	char		*tls_ca;	/* NULL: system store */
	bool		 tls_verify;
	int		 line;
};

struct wsflow_conf {
	char		*path;		/* file it came from, for messages */
	int		 log_level;	/* LOG_ERR .. LOG_DEBUG */
	struct {
		char	*path;
		mode_t	 mode;
		char	*group;
	} control;
	struct {
		struct listen_conf *listen;
		size_t	 nlisten;
		uint64_t batch_size;
		char	*digest;
		uint32_t max_connections;
		uint32_t handshake_timeout;
		uint32_t idle_timeout;
		uint32_t workers;	/* 0: one per CPU */
		bool	 metrics;
		bool	 lws_framing;	/* "lws": lws parses plain ws too */
	} server;
	struct producer_conf *producers;
	size_t		 nproducers;
};

/*
 * Parse and validate.  On failure returns -1 with "file:line: message" in
 * err (line omitted when there is none) and leaves *conf empty.
 */
int	 conf_load_file(const char *path, struct wsflow_conf *conf,
	    char *err, size_t errlen);
int	 conf_load_string(const char *text, const char *name,
	    struct wsflow_conf *conf, char *err, size_t errlen);
void	 conf_free(struct wsflow_conf *conf);

const char	*conf_mode_name(enum wsflow_mode mode);
int		 conf_mode_parse(const char *name, enum wsflow_mode *mode);
const struct producer_conf *conf_find_producer(const struct wsflow_conf *,
		    const char *name);
bool	 conf_producer_equal(const struct producer_conf *,
	    const struct producer_conf *);

#endif
