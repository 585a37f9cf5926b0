/*
 * test_ctlproto.c — the control protocol's checks of a START request
 * (daemon/ctl_proto.c): run NAME --parallel N carries N in its parallel
 * field, 1 to CTL_PARALLEL_MAX, and only with CTL_START_PARALLEL set;
 * every reply still fits one message.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ctl_proto.h"
#include "tap.h"

/* A START for the configured producer "loop": decode's answer. */
static int
start(uint32_t flags, uint32_t parallel, const char **why)
{
	static char buf[CTL_MSG_MAX];
	struct ctl_start st;
	struct ctl_request rq;
	size_t len;
	int fatal, n;

	memset(&st, 0, sizeof(st));
	snprintf(st.name, sizeof(st.name), "loop");
	st.flags = flags;
	st.parallel = parallel;
	len = ctl_encode(buf, CTL_REQ_START, 7, &st, sizeof(st));
	*why = "";
	n = ctl_request_decode(buf, len, &rq, why, &fatal);
	if (n > 0 && (rq.u.start.parallel != parallel ||
	    rq.u.start.flags != flags))
		return -2;
	return n > 0 ? 0 : n == 0 ? -3 : fatal ? -4 : -1;
}

int
main(void)
{
	const char *why;
	int rc;

	ok(start(CTL_START_PARALLEL, 1, &why) == 0, "parallel 1 taken");
	ok(start(CTL_START_PARALLEL, 4, &why) == 0, "parallel 4 taken");
	ok(start(CTL_START_PARALLEL, CTL_PARALLEL_MAX, &why) == 0,
	    "parallel %d (the configuration's most) taken", CTL_PARALLEL_MAX);
	rc = start(CTL_START_PARALLEL, 0, &why);
	ok(rc == -1 && strstr(why, "parallel") != NULL,
	    "parallel 0 refused, not fatal: %d '%s'", rc, why);
	rc = start(CTL_START_PARALLEL, CTL_PARALLEL_MAX + 1, &why);
	ok(rc == -1 && strstr(why, "parallel") != NULL,
	    "parallel %d refused: %d '%s'", CTL_PARALLEL_MAX + 1, rc, why);
	ok(start(0, 0, &why) == 0 && start(0, 999999, &why) == 0,
	    "without CTL_START_PARALLEL the field is not looked at");
	ok(start(CTL_START_PARALLEL | CTL_START_BYTES, 3, &why) == 0,
	    "with --bytes too");
	ok(sizeof(struct ctl_hdr) + sizeof(struct ctl_stream) <= CTL_MSG_MAX,
	    "a stream (with link_id) fits one message: %zu of %d",
	    sizeof(struct ctl_hdr) + sizeof(struct ctl_stream), CTL_MSG_MAX);
	ok(sizeof(struct ctl_result) == 16 + CTL_TEXT_MAX &&
	    offsetof(struct ctl_result, count) == 4,
	    "ctl_result: count where reserved was, the size unchanged");
	return done();
}
