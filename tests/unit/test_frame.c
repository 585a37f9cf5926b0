/*
 * test_frame.c — the producer's pure pieces: client frame headers, the
 * wide mask against a byte-at-a-time reference, the payload generator,
 * and ws:// URL parsing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"
#include "gen.h"
#include "tap.h"
#include "url.h"

/* RFC 6455 §5.2, decoded the slow way. */
static int
parse_header(const uint8_t *h, size_t n, int *op, int *fin, uint64_t *len,
    uint8_t key[4])
{
	size_t i = 2;

	if (n < 6 || !(h[1] & 0x80))
		return -1;
	*fin = h[0] >> 7;
	*op = h[0] & 0x0f;
	*len = h[1] & 0x7f;
	if (*len == 126) {
		*len = (uint64_t)h[2] << 8 | h[3];
		i = 4;
	} else if (*len == 127) {
		*len = 0;
		for (i = 2; i < 10; i++)
			*len = *len << 8 | h[i];
	}
	memcpy(key, h + i, 4);
	return (int)(i + 4);
}

static void
test_headers(void)
{
	static const uint64_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536,
	    (uint64_t)1 << 32, INT64_MAX };
	static const size_t want[] = { 6, 6, 6, 8, 8, 8, 14, 14, 14 };
	uint8_t buf[64], key[4] = { 1, 2, 3, 4 }, got[4];

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint8_t *payload = buf + 32;
		size_t hl = ws_client_header(payload, lens[i], WS_OP_BINARY,
		    i % 2 == 0, key);
		int op = -1, fin = -1;
		uint64_t len = 0;

		ok(hl == want[i] && parse_header(payload - hl, hl, &op, &fin,
		    &len, got) == (int)hl && len == lens[i] &&
		    op == WS_OP_BINARY && fin == (i % 2 == 0) &&
		    memcmp(got, key, 4) == 0,
		    "header for length %llu: %zu octets, minimal, masked",
		    (unsigned long long)lens[i], hl);
	}
}

static void
test_mask(void)
{
	uint8_t key[4] = { 0xde, 0xad, 0xbe, 0xef };
	uint8_t *a = malloc(70000), *b = malloc(70000);
	bool all = true;

	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len < 300; len += (len < 40 ? 1 : 37)) {
			for (size_t i = 0; i < len; i++)
				a[off + i] = b[off + i] = (uint8_t)(i * 7 + off);
			ws_mask(a + off, len, key);
			for (size_t i = 0; i < len; i++)
				b[off + i] ^= key[i & 3];
			if (memcmp(a + off, b + off, len) != 0)
				all = false;
		}
	ok(all, "wide mask equals the byte-wise one, every alignment and "
	    "length 0..300");
	for (size_t i = 0; i < 65536; i++)
		a[i] = b[i] = (uint8_t)i;
	ws_mask(a, 65536, key);
	ws_mask(a, 65536, key);
	ok(memcmp(a, b, 65536) == 0, "masking twice gives the payload back");
	free(a);
	free(b);
}

static void
test_gen(void)
{
	struct gen g1, g2;
	uint8_t a[1000], b[1000];
	unsigned long counts[256] = { 0 }, n = 0;
	static uint8_t big[1 << 20];

	gen_seed_from(&g1, 42);
	gen_seed_from(&g2, 42);
	gen_fill(&g1, a, sizeof(a));
	gen_fill(&g2, b, 997);
	gen_fill(&g2, b + 997, 3);
	ok(memcmp(a, b, 997) == 0, "same seed, same stream (tails aside)");
	gen_seed_from(&g2, 43);
	gen_fill(&g2, b, sizeof(b));
	ok(memcmp(a, b, sizeof(a)) != 0, "another seed, another stream");
	gen_fill(&g1, big, sizeof(big));
	for (size_t i = 0; i < sizeof(big); i++)
		counts[big[i]]++;
	for (int v = 0; v < 256; v++)	/* expect 4096 each */
		if (counts[v] > 3600 && counts[v] < 4600)
			n++;
	ok(n == 256, "1 MiB of output: every octet value within 12 %% of "
	    "its share (%lu of 256)", n);
	ok(gen_seed(&g1) == 0, "seeding from getrandom works");
}

static void
test_url(void)
{
	struct wsurl u;
	const char *why = "";
	int rc;

	ok(url_parse("ws://127.0.0.1:9000/frame", &u, &why) == 0 && !u.tls &&
	    strcmp(u.host, "127.0.0.1") == 0 && u.port == 9000 &&
	    strcmp(u.path, "/frame") == 0, "ws://host:port/path");
	ok(url_parse("wss://example.org", &u, &why) == 0 && u.tls &&
	    u.port == 443 && strcmp(u.path, "/") == 0, "wss:// defaults: "
	    "port 443, path /");
	ok(url_parse("ws://[::1]:81/message?x=1", &u, &why) == 0 &&
	    strcmp(u.host, "::1") == 0 && u.port == 81 &&
	    strcmp(u.path, "/message?x=1") == 0, "[IPv6] with a query");
	ok(url_parse("ws://h?q", &u, &why) == 0 && u.port == 80 &&
	    strcmp(u.path, "/?q") == 0, "query without a path");
	rc = url_parse("http://h/", &u, &why);	/* before why is read */
	ok(rc == -1, "http:// refused (%s)", why);
	ok(url_parse("ws://h:0/", &u, &why) == -1 &&
	    url_parse("ws://h:70000/", &u, &why) == -1 &&
	    url_parse("ws://h:x/", &u, &why) == -1, "bad ports refused");
	ok(url_parse("ws:///", &u, &why) == -1 &&
	    url_parse("ws://[::1/", &u, &why) == -1, "no host, unclosed [ "
	    "refused");
}

int
main(void)
{
	test_headers();
	test_mask();
	test_gen();
	test_url();
	return done();
}
