/*
 * ctl_proto.h — the control protocol between wsflowctl and wsflowd,
 * defined once and compiled into both.
 *
 * Same host, same build: host byte order, fixed C structs as payloads.
 * Every message is a 16-octet header and a payload whose size is fixed
 * by its type; both sides check the length before they read.  Listings
 * are zero or more data messages closed by CTL_REP_END; actions answer
 * one CTL_REP_RESULT.  A reply carries the request's sequence number.
 */
#ifndef WSFLOW_CTL_PROTO_H
#define WSFLOW_CTL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"

#define CTL_VERSION		6
#define CTL_MSG_MAX		4096	/* header + payload, any type */
#define WSFLOW_CTL_PATH		"/run/wsflow/wsflowd.sock"	/* default */
#define CTL_NAME_MAX		64
#define CTL_URL_MAX		512
#define CTL_TEXT_MAX		256

/* What a stream is and does, as the wire carries it (and the daemon
 * holds it): the names are the ones users type and read. */
enum wsflow_mode {
	MODE_PRODUCER,		/* producers only: one endless message */
	MODE_STREAMING,		/* digest every batch_size octets */
	MODE_FRAME,		/* digest after every frame */
	MODE_MESSAGE,		/* digest after every message */
};

enum stream_role {
	ROLE_SERVER,
	ROLE_PRODUCER,
};

extern const char *const wsflow_mode_names[];	/* NULL-terminated */
const char	*wsflow_mode_name(uint32_t mode);	/* "?" if unknown */
int		 wsflow_mode_parse(const char *, enum wsflow_mode *);
const char	*stream_role_name(uint32_t role);

struct ctl_hdr {
	uint32_t	len;		/* header + payload */
	uint16_t	version;	/* CTL_VERSION */
	uint16_t	type;		/* enum ctl_type */
	uint32_t	seq;		/* echoed in replies */
	uint32_t	reserved;	/* 0 */
};

enum ctl_type {
	/* requests, read-only */
	CTL_REQ_STATUS = 1,
	CTL_REQ_STREAMS,		/* ctl_key: "" = all */
	CTL_REQ_DIGESTS,		/* ctl_key: "" = all */
	/* requests that change something: root or the control group */
	CTL_REQ_START,			/* ctl_start */
	CTL_REQ_STOP,			/* ctl_key: id, name or "all" */
	CTL_REQ_RELOAD,
	CTL_REQ_STREAMS_ALL,		/* ctl_key ""; with ended, configured */
	/* replies */
	CTL_REP_STATUS = 64,		/* ctl_status */
	CTL_REP_LISTENER,		/* ctl_listener */
	CTL_REP_STREAM,			/* ctl_stream */
	CTL_REP_END,			/* end of a listing */
	CTL_REP_RESULT,			/* ctl_result */
	CTL_TYPE_MAX
};

enum ctl_result_code {
	CTL_OK = 0,
	CTL_ERR_BAD_REQUEST,
	CTL_ERR_VERSION,
	CTL_ERR_DENIED,
	CTL_ERR_NO_STREAM,
	CTL_ERR_NO_PRODUCER,
	CTL_ERR_RUNNING,
	CTL_ERR_START,
	CTL_ERR_RELOAD,
	CTL_ERR_STOPPING,
	CTL_ERR_INTERNAL,
	CTL_RESULT_MAX
};

struct ctl_key {
	char		key[CTL_NAME_MAX];	/* NUL-terminated */
};

#define CTL_START_MODE		0x01	/* flags: which fields are set */
#define CTL_START_BYTES		0x02
#define CTL_START_DURATION	0x04
#define CTL_START_RATE		0x08
#define CTL_START_PARALLEL	0x10
#define CTL_PARALLEL_MAX	100000	/* as the configuration's parallel */

struct ctl_start {
	char		name[CTL_NAME_MAX];	/* configured, or ad-hoc name */
	char		url[CTL_URL_MAX];	/* "" = start configured name */
	uint32_t	flags;
	uint32_t	mode;			/* enum wsflow_mode */
	uint64_t	bytes;
	uint64_t	rate;
	uint32_t	duration;
	uint32_t	parallel;		/* streams (an entry's parallel) */
};

struct ctl_status {
	char		version[16];
	char		digest[32];
	uint32_t	pid;
	uint32_t	nlisteners;
	uint64_t	uptime_sec;
	uint64_t	batch_size;
	uint64_t	streams;
	uint64_t	workers;
	/* server */
	uint64_t	connections;
	uint64_t	connections_total;
	uint64_t	bytes_received;
	uint64_t	digests_sent;
	/* producers */
	uint64_t	producers_running;
	uint64_t	bytes_sent;
	uint64_t	digests_received;
	uint64_t	digests_verified;
	uint64_t	digest_mismatches;
	char		conf_path[CTL_TEXT_MAX];
};

struct ctl_listener {
	char		address[64];
	int32_t		port;
	uint32_t	tls;
};

struct ctl_stream {
	uint64_t	id;
	uint32_t	role;		/* enum stream_role */
	uint32_t	mode;		/* enum wsflow_mode */
	char		state[16];
	char		name[CTL_NAME_MAX];
	char		peer[CTL_URL_MAX];
	uint64_t	age_sec;
	uint64_t	bytes;
	uint64_t	messages;
	uint64_t	digests;
	uint64_t	digests_verified;
	uint64_t	digest_mismatches;
	uint64_t	bytes_per_sec;
	uint64_t	avg_bytes_per_sec;
	uint64_t	backpressure_pauses;
	uint64_t	backpressure_usec;
	uint64_t	latency_last_us;
	uint64_t	latency_max_us;
	char		last_digest[129];
	/* An ended stream: state "finished", "failed" or "stopped". */
	uint32_t	ended;
	uint32_t	local_port;	/* producers: their connection's own
					 * port (another wsflowd's server
					 * stream names it in its peer) */
	uint64_t	run_usec;	/* ended: from start to end */
	char		end_reason[32];
	char		error[CTL_TEXT_MAX];
	uint64_t	reconnects;	/* retries after a failure or drop */
	int64_t		next_attempt_in_ms;	/* -1: none due */
	/* Producers: the last connection's phases, every digest's latency
	 * (hist.h's buckets: wsflowctl merges them for run's summary). */
	uint64_t	connect_tcp_us;
	uint64_t	connect_tls_us;
	uint64_t	connect_upgrade_us;
	uint64_t	latency_sum_us;
	uint64_t	latency_n[HIST_BUCKETS];
	/* The other end in this daemon: a producer's server stream, a
	 * server stream's producer; 0 none or not known (a server that is
	 * not a listener of this daemon). */
	uint64_t	link_id;
};

struct ctl_result {
	uint32_t	code;		/* enum ctl_result_code */
	uint32_t	count;		/* START: streams started, ids id .. */
	uint64_t	id;		/* stream started, streams stopped */
	char		message[CTL_TEXT_MAX];	/* START ok: the name */
};

/* A request as the daemon sees it once it has been checked. */
struct ctl_request {
	struct ctl_hdr	 hdr;
	union {
		struct ctl_key	 key;
		struct ctl_start start;
	} u;
};

/*
 * Take one request off the front of buf: its length (> 0), 0 when more
 * is needed, -1 when it is not a request the daemon can take (why says
 * what; the connection is then of no more use when hdr cannot be
 * trusted, *fatal set).
 */
int		 ctl_request_decode(const void *buf, size_t avail,
		    struct ctl_request *, const char **why, int *fatal);

/* What a complete message looks like: -1 bad, 0 need more, else len. */
int		 ctl_frame_check(const void *buf, size_t avail,
		    struct ctl_hdr *hdr, const char **why);
/* Build a message into buf (CTL_MSG_MAX); returns its length. */
size_t		 ctl_encode(void *buf, unsigned type, uint32_t seq,
		    const void *payload, size_t len);
const char	*ctl_result_str(unsigned code);
/* Copy src into a fixed field, NUL-terminated, reporting truncation. */
int		 ctl_strlcpy(char *dst, const char *src, size_t size);

#endif
