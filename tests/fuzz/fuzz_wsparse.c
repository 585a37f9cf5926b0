/*
 * fuzz_wsparse.c — libFuzzer target for what a client sends a plain
 * listener: the first request (upgrade.c), then, behind a valid upgrade,
 * the frames (ws.c), as one stream.  Input that is no upgrade is
 * fuzzed as frames from its first octet too.
 *
 * Checked: no crash and no over-read (every buffer an exact copy); every
 * request gets a status of spec §1; the parser's promises (chunks within
 * the input, flags in order, control payloads within 125 octets, nothing
 * parsed after an error or a close, progress on every call); and the
 * same events whether the frames arrive whole or cut the way reads cut
 * them, with a handler that says "stop" now and then, as a pause does
 * (the same close code where there is a violation).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upgrade.h"
#include "ws.h"
#include "seen.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/*
 * Feed data in pieces of `piece` octets (0: whole), each an exact copy,
 * going on after every "stop" as wsserver.c does.
 */
static void
parse_all(const uint8_t *data, size_t size, size_t piece, struct seen *s,
    struct ws_parser *p)
{
	size_t off = 0;
	uint8_t after = 0;

	ws_parser_init(p);
	while (off < size) {
		size_t n = piece == 0 || size - off < piece ? size - off : piece;
		uint8_t *copy = malloc(n);
		size_t used;

		memcpy(copy, data + off, n);
		used = ws_parse(p, copy, n, &handler, s);
		free(copy);
		if (used > n)
			abort();
		if (p->error != 0 || p->closed) {
			if (p->error != 0 && p->why == NULL)
				abort();
			if (ws_parse(p, &after, 1, &handler, s) != 0)
				abort();	/* nothing after the end */
			return;
		}
		if (used == 0)
			abort();		/* no progress: a caller spins */
		off += used;
	}
}

static void
check_request(const uint8_t *data, size_t size, struct upgrade *u,
    enum upgrade_verdict *v)
{
	char reply[UPGRADE_REPLY_MAX];
	char *head = malloc(size ? size : 1);
	const char *why;

	memcpy(head, data, size);
	*v = upgrade_parse(head, size, u);
	free(head);
	if (*v == UPGRADE_MORE)
		return;
	for (int ws_path = 0; ws_path < 2; ws_path++) {
		unsigned st = upgrade_status(u, *v, ws_path, &why);

		switch (st) {
		case 101:
			if (*v != UPGRADE_OURS || !ws_path)
				abort();
			break;
		case 200: case 400: case 404: case 405: case 414: case 426:
		case 431:
			if (st != 200 && (why == NULL || why[0] == '\0'))
				abort();
			break;
		default:
			abort();
		}
	}
	if (*v == UPGRADE_OURS && (u->head_len > size ||
	    upgrade_reply(u, "", reply, sizeof(reply)) == 0))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_parser pw, pp;
	struct upgrade u;
	enum upgrade_verdict v;
	struct seen whole = { 0 }, pieces = { 0 };
	size_t piece;
	unsigned stop_every;

	if (size < 2)
		return 0;
	piece = 1 + data[0] % 64;	/* read sizes */
	stop_every = data[1] % 4;
	data += 2;
	size -= 2;

	check_request(data, size, &u, &v);
	if (v == UPGRADE_OURS) {	/* the frames behind the handshake */
		data += u.head_len;
		size -= u.head_len;
	}
	whole.stop_every = pieces.stop_every = stop_every;
	parse_all(data, size, 0, &whole, &pw);
	parse_all(data, size, piece, &pieces, &pp);
	if (whole.octets > size || pw.error != pp.error ||
	    pw.closed != pp.closed)
		abort();		/* whole and cut disagree */
	/* Without a violation every event agrees; with one, invalid UTF-8
	 * fails as early as the cut lets it see, so only the code must. */
	if (pw.error == 0 && (whole.octets != pieces.octets ||
	    whole.hash != pieces.hash))
		abort();
	return 0;
}
