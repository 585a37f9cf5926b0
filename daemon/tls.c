/*
 * tls.c — OpenSSL server contexts for wsflowd's own TLS listeners.
 *
 * HTTP/1.1 only (ALPN), TLS 1.2 and up, partial writes allowed with a
 * buffer that may move between retries (wsserver.c keeps its output in a
 * buffer that shifts), idle buffers released: a connection that is not
 * reading or writing holds no record buffers.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "tls.h"

#define TLS_READ_AHEAD	(128 * 1024)	/* octets OpenSSL reads at once */

/* What OpenSSL said last, for a message. */
static const char *
tls_why(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		return "unknown error";
	ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* Offered protocols: http/1.1 or nothing (ws over h2 is not spoken). */
static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h11[] = "\x08http/1.1";

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto((unsigned char **)(uintptr_t)out, outlen,
	    h11, sizeof(h11) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	return SSL_TLSEXT_ERR_OK;
}

/* Say plainly why a file cannot be read (OpenSSL says "system lib"). */
static int
readable(const char *what, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		snprintf(err, errlen, "TLS %s %s: %s", what, path,
		    strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

SSL_CTX *
tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
	char why[256];
	SSL_CTX *ctx;

	if (readable("certificate", cert, err, errlen) == -1 ||
	    readable("key", key, err, errlen) == -1)
		return NULL;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "TLS: %s", tls_why(why, sizeof(why)));
		return NULL;
	}
	(void)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	/* Many records a read(): a 16 KiB record in two syscalls (header,
	 * body) was a tenth of a TLS stream's CPU. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, TLS_READ_AHEAD);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errlen, "TLS certificate %s: %s", cert,
		    tls_why(why, sizeof(why)));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) !=
		    X509_R_KEY_VALUES_MISMATCH) {
			snprintf(err, errlen, "TLS key %s: %s", key,
			    tls_why(why, sizeof(why)));
			goto fail;
		}
		ERR_clear_error();
		goto mismatch;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
mismatch:
		snprintf(err, errlen, "TLS key %s does not belong to the "
		    "certificate %s", key, cert);
		ERR_clear_error();
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* A producer's CA file: readable and holding certificates OpenSSL loads. */
int
tls_check_ca(const char *ca, char *err, size_t errlen)
{
	char why[256];
	SSL_CTX *ctx;
	int rc = 0;

	if (readable("CA file", ca, err, errlen) == -1)
		return -1;
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errlen, "TLS: %s", tls_why(why, sizeof(why)));
		return -1;
	}
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		snprintf(err, errlen, "TLS CA file %s: %s", ca,
		    tls_why(why, sizeof(why)));
		rc = -1;
	}
	SSL_CTX_free(ctx);
	return rc;
}
