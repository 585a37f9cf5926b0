/*
 * tls.h — TLS for the listeners wsflowd frames itself: one OpenSSL
 * server context per listener, made on the main thread and shared by the
 * workers (SSL_new is thread-safe on it), and the check `wsflowd -n`
 * makes of certificate and key files.
 */
#ifndef WSFLOW_TLS_H
#define WSFLOW_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* A server context for cert (PEM, chain allowed) and key; NULL with a
 * message in err. */
SSL_CTX	*tls_server_ctx(const char *cert, const char *key, char *err,
	    size_t errlen);

/* 0 if the CA file can be read and loads; -1 with a message. */
int	 tls_check_ca(const char *, char *, size_t);

#endif
