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

#include <openssl/evp.h>

#include "ctl_proto.h"

#define WSFLOW_CONF_DEFAULT	"/etc/wsflow/wsflow.conf"
#define WSFLOW_NAME_MAX		64	/* producer and stream names, with NUL */
#define WSFLOW_ERR_MAX		512	/* "file:line: message" */

/* How data is cut into digests, both on the server and in producers. */
enum wsflow_framing {
	FRAMING_WSFLOW,		/* wsflowd frames and parses itself */
	FRAMING_LWS,		/* stock lws, kept as a reference */
};

/* Limits the configuration and the code share. */
#define WSFLOW_WORKERS_MAX	64
#define WSFLOW_FRAME_SIZE_MAX	(16u << 20)	/* a producer's frame */
#define WSFLOW_CTL_MODE		0660

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
	uint32_t	 parallel;	/* streams the entry opens, >= 1 */
	uint32_t	 ramp;		/* new connections a second, 0: at once */
	bool		 reconnect;
	uint64_t	 batch_size;	/* 0: the server's batch_size */
	enum wsflow_framing framing;	/* "lws": stock lws_write */
	char		*tls_ca;	/* NULL: system store */
	bool		 tls_verify;
	char		*headers;	/* "Name: value" lines, or NULL */
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
		bool	 dashboard;	/* GET / and /live */
		enum wsflow_framing framing; /* "lws": lws parses plain ws */
		char	*origins;	/* allowed Origin lines; NULL: any */
		char	*subprotocols;	/* selectable ones, lines; NULL:
					 * none selected (spec §1) */
		uint32_t history;	/* ended streams kept */
	} server;
	struct producer_conf *producers;
	size_t		 nproducers;
};

/* What a worker needs of the server settings: its own copy. */
struct server_params {
	uint64_t	 batch_size;
	const EVP_MD	*md;
	uint32_t	 idle_timeout;
	uint32_t	 handshake_timeout;
	bool		 metrics;
	bool		 dashboard;	/* GET / and /live */
	enum wsflow_framing framing;	/* plain listeners parsed by lws too */
	char		*origins;	/* lines; a worker owns its copy */
	char		*subprotocols;	/* lines; a worker owns its copy */
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

/*
 * The server settings a worker takes.  Strings are borrowed from the
 * configuration: a worker keeps its own copy (worker_set_params).
 */
void	 conf_server_params(const struct wsflow_conf *,
	    struct server_params *);

/* The defaults of a producer entry (url NULL), for ad-hoc producers. */
int	 conf_producer_defaults(struct producer_conf *);

/* Every key ("server.listen.port"), its kind and integer limits. */
typedef void	(*conf_key_fn)(const char *path, const char *kind,
		    uint64_t min, uint64_t max, void *arg);
void	 conf_keys(conf_key_fn, void *arg);

const struct producer_conf *conf_find_producer(const struct wsflow_conf *,
		    const char *name);
bool	 conf_producer_equal(const struct producer_conf *,
	    const struct producer_conf *);

#endif
