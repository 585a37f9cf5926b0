/*
 * fuzz_ctl.c — libFuzzer target for the control-request decoder: any
 * octets a client can send must be taken apart without a crash, an
 * over-read, or a request that breaks the rules afterwards.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_request rq;
	const char *why;
	size_t off = 0;
	int n, fatal;

	/* A stream of requests, as the daemon consumes them. */
	while (off < size) {
		uint8_t *copy = malloc(size - off);	/* exact: ASan sees */

		memcpy(copy, data + off, size - off);
		why = NULL;
		n = ctl_request_decode(copy, size - off, &rq, &why, &fatal);
		free(copy);
		if (n == 0 || (n < 0 && fatal))
			break;
		if (n < 0 && why == NULL)
			abort();
		if (n > 0) {
			if (rq.hdr.len != (uint32_t)n || n > CTL_MSG_MAX)
				abort();
			if (rq.hdr.type == CTL_REQ_STOP &&
			    strlen(rq.u.key.key) >= sizeof(rq.u.key.key))
				abort();
		}
		off += rq.hdr.len;
	}
	return 0;
}
