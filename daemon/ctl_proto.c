/*
 * ctl_proto.c — framing and checks of the control protocol, shared by
 * wsflowd and wsflowctl.
 */
#include <string.h>

#include "config.h"

#include "ctl_proto.h"

static const long payload_sizes[CTL_TYPE_MAX] = {
	[CTL_REQ_STATUS] = 0,
	[CTL_REQ_STREAMS] = sizeof(struct ctl_key),
	[CTL_REQ_DIGESTS] = sizeof(struct ctl_key),
	[CTL_REQ_START] = sizeof(struct ctl_start),
	[CTL_REQ_STOP] = sizeof(struct ctl_key),
	[CTL_REQ_RELOAD] = 0,
	[CTL_REQ_STREAMS_ALL] = sizeof(struct ctl_key),
	[CTL_REP_STATUS] = sizeof(struct ctl_status),
	[CTL_REP_LISTENER] = sizeof(struct ctl_listener),
	[CTL_REP_STREAM] = sizeof(struct ctl_stream),
	[CTL_REP_END] = 0,
	[CTL_REP_RESULT] = sizeof(struct ctl_result),
};

/* Types in the gaps of the table are not types. */
static int
type_valid(unsigned type)
{
	return (type >= CTL_REQ_STATUS && type <= CTL_REQ_STREAMS_ALL) ||
	    (type >= CTL_REP_STATUS && type < CTL_TYPE_MAX);
}

/* Payload size a type must carry, or -1 for no such type. */
static long
ctl_payload_size(unsigned type)
{
	return type_valid(type) ? payload_sizes[type] : -1;
}

int
ctl_frame_check(const void *buf, size_t avail, struct ctl_hdr *hdr,
    const char **why)
{
	long want;

	if (avail < sizeof(*hdr))
		return 0;
	memcpy(hdr, buf, sizeof(*hdr));
	if (hdr->version != CTL_VERSION) {
		*why = "protocol version mismatch";
		return -1;
	}
	if (hdr->len < sizeof(*hdr) || hdr->len > CTL_MSG_MAX) {
		*why = "bad message length";
		return -1;
	}
	if ((want = ctl_payload_size(hdr->type)) < 0) {
		*why = "unknown message type";
		return -1;
	}
	if (hdr->len != sizeof(*hdr) + (size_t)want) {
		*why = "payload size does not match its type";
		return -1;
	}
	if (avail < hdr->len)
		return 0;
	return (int)hdr->len;
}

size_t
ctl_encode(void *buf, unsigned type, uint32_t seq, const void *payload,
    size_t len)
{
	struct ctl_hdr h;

	memset(&h, 0, sizeof(h));
	h.len = (uint32_t)(sizeof(h) + len);
	h.version = CTL_VERSION;
	h.type = (uint16_t)type;
	h.seq = seq;
	memcpy(buf, &h, sizeof(h));
	if (len > 0)
		memcpy((char *)buf + sizeof(h), payload, len);
	return h.len;
}

static const char *const result_strs[CTL_RESULT_MAX] = {
	[CTL_OK] = "ok",
	[CTL_ERR_BAD_REQUEST] = "bad request",
	[CTL_ERR_VERSION] = "protocol version mismatch",
	[CTL_ERR_DENIED] = "permission denied",
	[CTL_ERR_NO_STREAM] = "no such stream",
	[CTL_ERR_NO_PRODUCER] = "no such producer in the configuration",
	[CTL_ERR_RUNNING] = "producer already running",
	[CTL_ERR_START] = "cannot start the producer",
	[CTL_ERR_RELOAD] = "configuration refused",
	[CTL_ERR_STOPPING] = "daemon is stopping",
	[CTL_ERR_INTERNAL] = "internal error",
};

const char *const wsflow_mode_names[] = {
	[MODE_PRODUCER] = "producer",
	[MODE_STREAMING] = "streaming",
	[MODE_FRAME] = "frame",
	[MODE_MESSAGE] = "message",
	NULL
};

const char *
wsflow_mode_name(uint32_t mode)
{
	return mode <= MODE_MESSAGE ? wsflow_mode_names[mode] : "?";
}

int
wsflow_mode_parse(const char *name, enum wsflow_mode *mode)
{
	for (unsigned i = 0; wsflow_mode_names[i] != NULL; i++)
		if (strcmp(name, wsflow_mode_names[i]) == 0) {
			*mode = (enum wsflow_mode)i;
			return 0;
		}
	return -1;
}

const char *
stream_role_name(uint32_t role)
{
	return role == ROLE_SERVER ? "server" : role == ROLE_PRODUCER ?
	    "producer" : "?";
}

const char *
ctl_result_str(unsigned code)
{
	return code < CTL_RESULT_MAX ? result_strs[code] : "unknown result";
}

int
ctl_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (n >= size) {
		memcpy(dst, src, size - 1);
		dst[size - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}


/* A received fixed string field is terminated within its size. */
static int
ctl_str_ok(const char *field, size_t size)
{
	return memchr(field, '\0', size) != NULL;
}

int
ctl_request_decode(const void *buf, size_t avail, struct ctl_request *rq,
    const char **why, int *fatal)
{
	int n;

	memset(rq, 0, sizeof(*rq));
	*fatal = 0;
	if ((n = ctl_frame_check(buf, avail, &rq->hdr, why)) <= 0) {
		*fatal = n < 0;		/* framing lost: nothing after is sane */
		return n;
	}
	if (rq->hdr.type > CTL_REQ_STREAMS_ALL) {
		*why = "not a request";
		return -1;
	}
	memcpy(&rq->u, (const char *)buf + sizeof(rq->hdr),
	    rq->hdr.len - sizeof(rq->hdr));
	switch (rq->hdr.type) {
	case CTL_REQ_STREAMS:
	case CTL_REQ_DIGESTS:
	case CTL_REQ_STOP:
	case CTL_REQ_STREAMS_ALL:
		if (!ctl_str_ok(rq->u.key.key, sizeof(rq->u.key.key))) {
			*why = "unterminated key";
			return -1;
		}
		break;
	case CTL_REQ_START:
		if (!ctl_str_ok(rq->u.start.name, sizeof(rq->u.start.name)) ||
		    !ctl_str_ok(rq->u.start.url, sizeof(rq->u.start.url))) {
			*why = "unterminated name or url";
			return -1;
		}
		if ((rq->u.start.flags & CTL_START_MODE) &&
		    rq->u.start.mode > MODE_MESSAGE) {
			*why = "no such mode";
			return -1;
		}
		if ((rq->u.start.flags & CTL_START_PARALLEL) &&
		    (rq->u.start.parallel < 1 ||
		    rq->u.start.parallel > CTL_PARALLEL_MAX)) {
			*why = "parallel out of range";
			return -1;
		}
		if (rq->u.start.url[0] == '\0' && rq->u.start.name[0] == '\0') {
			*why = "start needs a name or a url";
			return -1;
		}
		break;
	default:
		break;
	}
	return n;
}
