/*
 * config.c — read wsflow.conf with libconfig and check every key.
 *
 * Each group is described by a table of keys; anything not in a table is
 * an error, so a typo never silently becomes a default.  Errors carry the
 * file and line of the offending setting.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "config.h"
#include "url.h"

#define CONF_SIZE_MAX	(1 << 20)

struct parse {
	const char	*file;
	char		*err;
	size_t		 errlen;
};

/* One key of a group: its name and the function that stores it. */
struct key {
	const char	*name;
	int		(*set)(struct parse *, config_setting_t *, void *);
};

static int	parse_group(struct parse *, config_setting_t *,
		    const struct key *, void *);

static int __attribute__((format(printf, 3, 4)))
fail(struct parse *p, const config_setting_t *s, const char *fmt, ...)
{
	char	 msg[WSFLOW_ERR_MAX];
	va_list	 ap;
	int	 line = s ? (int)config_setting_source_line(s) : 0;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(p->err, p->errlen, "%s:%d: %s", p->file, line, msg);
	else
		snprintf(p->err, p->errlen, "%s: %s", p->file, msg);
	return -1;
}

/* Integer of either libconfig width, within [min, max]. */
static int
get_uint(struct parse *p, config_setting_t *s, uint64_t min, uint64_t max,
    uint64_t *out)
{
	long long v;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		v = config_setting_get_int(s);
		break;
	case CONFIG_TYPE_INT64:
		v = config_setting_get_int64(s);
		break;
	default:
		return fail(p, s, "'%s' must be an integer",
		    config_setting_name(s));
	}
	if (v < 0 || (uint64_t)v < min || (uint64_t)v > max)
		return fail(p, s, "'%s' = %lld is out of range (%llu..%llu)",
		    config_setting_name(s), v, (unsigned long long)min,
		    (unsigned long long)max);
	*out = (uint64_t)v;
	return 0;
}

static int
get_u32(struct parse *p, config_setting_t *s, uint64_t min, uint64_t max,
    uint32_t *out)
{
	uint64_t v = 0;

	if (get_uint(p, s, min, max, &v) == -1)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int
get_bool(struct parse *p, config_setting_t *s, bool *out)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return fail(p, s, "'%s' must be true or false",
		    config_setting_name(s));
	*out = config_setting_get_bool(s) != 0;
	return 0;
}

/* A string, copied; empty strings allowed only when allow_empty. */
static int
get_str(struct parse *p, config_setting_t *s, bool allow_empty, char **out)
{
	const char *v;

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(p, s, "'%s' must be a string",
		    config_setting_name(s));
	v = config_setting_get_string(s);
	if (!allow_empty && *v == '\0')
		return fail(p, s, "'%s' must not be empty",
		    config_setting_name(s));
	free(*out);
	if ((*out = strdup(v)) == NULL)
		return fail(p, s, "out of memory");
	return 0;
}

/* ---- top level ---- */

static int
set_log_level(struct parse *p, config_setting_t *s, void *arg)
{
	static const struct { const char *name; int level; } levels[] = {
		{ "err", LOG_ERR }, { "warning", LOG_WARNING },
		{ "notice", LOG_NOTICE }, { "info", LOG_INFO },
		{ "debug", LOG_DEBUG },
	};
	struct wsflow_conf *c = arg;
	const char *v;

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(p, s, "'log_level' must be a string");
	v = config_setting_get_string(s);
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strcmp(v, levels[i].name) == 0) {
			c->log_level = levels[i].level;
			return 0;
		}
	return fail(p, s, "unknown log_level '%s' (err, warning, notice, "
	    "info, debug)", v);
}

/* ---- control ---- */

static int
set_control_path(struct parse *p, config_setting_t *s, void *arg)
{
	struct wsflow_conf *c = arg;

	if (get_str(p, s, false, &c->control.path) == -1)
		return -1;
	if (c->control.path[0] != '/')
		return fail(p, s, "control path must be absolute");
	if (strlen(c->control.path) >= 108)	/* sun_path */
		return fail(p, s, "control path is too long");
	return 0;
}

static int
set_control_mode(struct parse *p, config_setting_t *s, void *arg)
{
	struct wsflow_conf *c = arg;
	const char *v;
	char *end;
	unsigned long m;

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(p, s, "'mode' must be an octal string like \"0660\"");
	v = config_setting_get_string(s);
	errno = 0;
	m = strtoul(v, &end, 8);
	if (*v == '\0' || *end != '\0' || errno || m > 0777)
		return fail(p, s, "'mode' must be an octal string like \"0660\"");
	c->control.mode = (mode_t)m;
	return 0;
}

static int
set_control_group(struct parse *p, config_setting_t *s, void *arg)
{
	return get_str(p, s, true, &((struct wsflow_conf *)arg)->control.group);
}

static const struct key control_keys[] = {
	{ "path", set_control_path },
	{ "mode", set_control_mode },
	{ "group", set_control_group },
	{ NULL, NULL }
};

static int
set_control(struct parse *p, config_setting_t *s, void *arg)
{
	return parse_group(p, s, control_keys, arg);
}

/* ---- server.listen ---- */

static void
free_listen(struct wsflow_conf *c)
{
	for (size_t i = 0; i < c->server.nlisten; i++) {
		free(c->server.listen[i].address);
		free(c->server.listen[i].tls_cert);
		free(c->server.listen[i].tls_key);
	}
	free(c->server.listen);
	c->server.listen = NULL;
	c->server.nlisten = 0;
}

static int
set_tls_cert(struct parse *p, config_setting_t *s, void *arg)
{
	return get_str(p, s, false, &((struct listen_conf *)arg)->tls_cert);
}

static int
set_tls_key(struct parse *p, config_setting_t *s, void *arg)
{
	return get_str(p, s, false, &((struct listen_conf *)arg)->tls_key);
}

static const struct key listen_tls_keys[] = {
	{ "cert", set_tls_cert },
	{ "key", set_tls_key },
	{ NULL, NULL }
};

static int
set_listen_address(struct parse *p, config_setting_t *s, void *arg)
{
	return get_str(p, s, false, &((struct listen_conf *)arg)->address);
}

static int
set_listen_port(struct parse *p, config_setting_t *s, void *arg)
{
	uint64_t v = 0;

	if (get_uint(p, s, 1, 65535, &v) == -1)
		return -1;
	((struct listen_conf *)arg)->port = (int)v;
	return 0;
}

static int
set_listen_tls(struct parse *p, config_setting_t *s, void *arg)
{
	struct listen_conf *l = arg;

	if (parse_group(p, s, listen_tls_keys, l) == -1)
		return -1;
	if (l->tls_cert == NULL || l->tls_key == NULL)
		return fail(p, s, "tls needs both 'cert' and 'key'");
	return 0;
}

static const struct key listen_keys[] = {
	{ "address", set_listen_address },
	{ "port", set_listen_port },
	{ "tls", set_listen_tls },
	{ NULL, NULL }
};

static int
set_listen(struct parse *p, config_setting_t *s, void *arg)
{
	struct wsflow_conf *c = arg;
	int n;

	if (!config_setting_is_list(s) && !config_setting_is_array(s))
		return fail(p, s, "'listen' must be a list: ( { address = "
		    "\"127.0.0.1\"; port = 9000; } )");
	n = config_setting_length(s);
	if (n == 0)
		return fail(p, s, "'listen' must name at least one address");
	free_listen(c);		/* the default entry */
	c->server.listen = calloc((size_t)n, sizeof(*c->server.listen));
	if (c->server.listen == NULL)
		return fail(p, s, "out of memory");
	c->server.nlisten = (size_t)n;
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct listen_conf *l = &c->server.listen[i];

		l->line = (int)config_setting_source_line(e);
		l->port = 9000;
		if (parse_group(p, e, listen_keys, l) == -1)
			return -1;
		if (l->address == NULL && (l->address = strdup("127.0.0.1")) ==
		    NULL)
			return fail(p, e, "out of memory");
	}
	return 0;
}

/* ---- server ---- */

static int
set_batch_size(struct parse *p, config_setting_t *s, void *arg)
{
	/* 1 is legal but a digest per octet; the top keeps counts sane. */
	return get_uint(p, s, 1, (uint64_t)1 << 40,
	    &((struct wsflow_conf *)arg)->server.batch_size);
}

static bool
digest_usable(const EVP_MD *md)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, md, NULL) == 1;

	EVP_MD_CTX_free(ctx);
	return ok;
}

static int
set_digest(struct parse *p, config_setting_t *s, void *arg)
{
	struct wsflow_conf *c = arg;
	const EVP_MD *md;

	if (get_str(p, s, false, &c->server.digest) == -1)
		return -1;
	md = EVP_get_digestbyname(c->server.digest);
	if (md == NULL)
		return fail(p, s, "unknown digest '%s' (any OpenSSL digest "
		    "name: sha256, sha512, sha3-256, blake2b512)",
		    c->server.digest);
	if (EVP_MD_get_size(md) <= 0)	/* XOFs like shake need a length */
		return fail(p, s, "digest '%s' has no fixed length",
		    c->server.digest);
	/* A name OpenSSL knows may still have no provider (md4, whirlpool
	 * live in the legacy one): every upgrade would fail. */
	if (!digest_usable(md))
		return fail(p, s, "digest '%s' cannot be used: no loaded "
		    "OpenSSL provider implements it", c->server.digest);
	return 0;
}

static int
set_max_connections(struct parse *p, config_setting_t *s, void *arg)
{
	return get_u32(p, s, 1, 1000000,
	    &((struct wsflow_conf *)arg)->server.max_connections);
}

static int
set_handshake_timeout(struct parse *p, config_setting_t *s, void *arg)
{
	return get_u32(p, s, 1, 3600,
	    &((struct wsflow_conf *)arg)->server.handshake_timeout);
}

static int
set_idle_timeout(struct parse *p, config_setting_t *s, void *arg)
{
	return get_u32(p, s, 0, 86400,
	    &((struct wsflow_conf *)arg)->server.idle_timeout);
}

static int
set_workers(struct parse *p, config_setting_t *s, void *arg)
{
	return get_u32(p, s, 0, 64,
	    &((struct wsflow_conf *)arg)->server.workers);
}

static int
set_metrics(struct parse *p, config_setting_t *s, void *arg)
{
	return get_bool(p, s, &((struct wsflow_conf *)arg)->server.metrics);
}

static int set_framing(struct parse *, config_setting_t *, void *);

static const struct key server_keys[] = {
	{ "listen", set_listen },
	{ "batch_size", set_batch_size },
	{ "digest", set_digest },
	{ "max_connections", set_max_connections },
	{ "handshake_timeout", set_handshake_timeout },
	{ "idle_timeout", set_idle_timeout },
	{ "workers", set_workers },
	{ "metrics", set_metrics },
	{ "framing", set_framing },
	{ NULL, NULL }
};

static int
set_server(struct parse *p, config_setting_t *s, void *arg)
{
	return parse_group(p, s, server_keys, arg);
}

/* ---- producers ---- */

static int
set_p_name(struct parse *p, config_setting_t *s, void *arg)
{
	struct producer_conf *pc = arg;
	const char *v;

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(p, s, "'name' must be a string");
	v = config_setting_get_string(s);
	if (*v == '\0' || strlen(v) >= sizeof(pc->name))
		return fail(p, s, "'name' must be 1..%zu characters",
		    sizeof(pc->name) - 1);
	for (const char *c = v; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' ||
		    *c == '.'))
			return fail(p, s, "'name' may hold only letters, "
			    "digits, '-', '_' and '.'");
	if (*v >= '0' && *v <= '9')
		return fail(p, s, "'name' must not start with a digit "
		    "(it would read as a stream id)");
	strcpy(pc->name, v);
	return 0;
}

static int
set_p_url(struct parse *p, config_setting_t *s, void *arg)
{
	struct producer_conf *pc = arg;

	struct wsurl u;
	const char *why;

	if (get_str(p, s, false, &pc->url) == -1)
		return -1;
	if (url_parse(pc->url, &u, &why) == -1)
		return fail(p, s, "bad url: %s", why);
	return 0;
}

static int
set_p_mode(struct parse *p, config_setting_t *s, void *arg)
{
	struct producer_conf *pc = arg;

	if (config_setting_type(s) != CONFIG_TYPE_STRING ||
	    conf_mode_parse(config_setting_get_string(s), &pc->mode) == -1)
		return fail(p, s, "'mode' must be one of producer, streaming, "
		    "frame, message");
	return 0;
}

static int
set_p_autostart(struct parse *p, config_setting_t *s, void *arg)
{
	return get_bool(p, s, &((struct producer_conf *)arg)->autostart);
}

static int
set_p_frame_size(struct parse *p, config_setting_t *s, void *arg)
{
	return get_u32(p, s, 1, 16 << 20,
	    &((struct producer_conf *)arg)->frame_size);
}

static int
set_p_message_size(struct parse *p, config_setting_t *s, void *arg)
{
	return get_uint(p, s, 1, (uint64_t)1 << 40,
	    &((struct producer_conf *)arg)->message_size);
}

static int
set_p_rate(struct parse *p, config_setting_t *s, void *arg)
{
	return get_uint(p, s, 0, (uint64_t)1 << 40,
	    &((struct producer_conf *)arg)->rate);
}

static int
set_p_bytes(struct parse *p, config_setting_t *s, void *arg)
{
	return get_uint(p, s, 0, INT64_MAX,
	    &((struct producer_conf *)arg)->bytes);
}

static int
set_p_duration(struct parse *p, config_setting_t *s, void *arg)
{
	return get_u32(p, s, 0, 86400 * 365,
	    &((struct producer_conf *)arg)->duration);
}

static int
set_p_reconnect(struct parse *p, config_setting_t *s, void *arg)
{
	return get_bool(p, s, &((struct producer_conf *)arg)->reconnect);
}

static int
set_p_batch_size(struct parse *p, config_setting_t *s, void *arg)
{
	return get_uint(p, s, 1, (uint64_t)1 << 40,
	    &((struct producer_conf *)arg)->batch_size);
}

/* framing = "wsflow" | "lws", for a producer and for the server. */
static int
get_framing(struct parse *p, config_setting_t *s, bool *lws_framing)
{
	const char *v;

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(p, s, "'framing' must be \"wsflow\" or \"lws\"");
	v = config_setting_get_string(s);
	if (strcmp(v, "wsflow") == 0)
		*lws_framing = false;
	else if (strcmp(v, "lws") == 0)
		*lws_framing = true;
	else
		return fail(p, s, "'framing' must be \"wsflow\" or \"lws\"");
	return 0;
}

static int
set_framing(struct parse *p, config_setting_t *s, void *arg)
{
	return get_framing(p, s,
	    &((struct wsflow_conf *)arg)->server.lws_framing);
}

static int
set_p_framing(struct parse *p, config_setting_t *s, void *arg)
{
	return get_framing(p, s, &((struct producer_conf *)arg)->lws_framing);
}

static int
set_p_tls_ca(struct parse *p, config_setting_t *s, void *arg)
{
	struct producer_conf *pc = arg;

	if (get_str(p, s, true, &pc->tls_ca) == -1)
		return -1;
	if (pc->tls_ca[0] == '\0') {		/* "" = system store */
		free(pc->tls_ca);
		pc->tls_ca = NULL;
	}
	return 0;
}

static int
set_p_tls_verify(struct parse *p, config_setting_t *s, void *arg)
{
	return get_bool(p, s, &((struct producer_conf *)arg)->tls_verify);
}

static const struct key producer_tls_keys[] = {
	{ "ca", set_p_tls_ca },
	{ "verify", set_p_tls_verify },
	{ NULL, NULL }
};

static int
set_p_tls(struct parse *p, config_setting_t *s, void *arg)
{
	return parse_group(p, s, producer_tls_keys, arg);
}

static const struct key producer_keys[] = {
	{ "name", set_p_name },
	{ "url", set_p_url },
	{ "mode", set_p_mode },
	{ "autostart", set_p_autostart },
	{ "frame_size", set_p_frame_size },
	{ "message_size", set_p_message_size },
	{ "rate", set_p_rate },
	{ "bytes", set_p_bytes },
	{ "duration", set_p_duration },
	{ "reconnect", set_p_reconnect },
	{ "batch_size", set_p_batch_size },
	{ "framing", set_p_framing },
	{ "tls", set_p_tls },
	{ NULL, NULL }
};

static int
set_producers(struct parse *p, config_setting_t *s, void *arg)
{
	struct wsflow_conf *c = arg;
	int n;

	if (!config_setting_is_list(s))
		return fail(p, s, "'producers' must be a list: ( { name = "
		    "\"...\"; url = \"ws://...\"; } )");
	n = config_setting_length(s);
	c->producers = calloc(n ? (size_t)n : 1, sizeof(*c->producers));
	if (c->producers == NULL)
		return fail(p, s, "out of memory");
	c->nproducers = (size_t)n;
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct producer_conf *pc = &c->producers[i];

		pc->line = (int)config_setting_source_line(e);
		pc->mode = MODE_PRODUCER;
		pc->autostart = true;
		pc->frame_size = 65536;
		pc->message_size = 1048576;
		pc->reconnect = true;
		pc->tls_verify = true;
		if (parse_group(p, e, producer_keys, pc) == -1)
			return -1;
		if (pc->name[0] == '\0')
			return fail(p, e, "producer needs a 'name'");
		if (pc->url == NULL)
			return fail(p, e, "producer '%s' needs a 'url'",
			    pc->name);
		for (int j = 0; j < i; j++)
			if (strcmp(c->producers[j].name, pc->name) == 0)
				return fail(p, e, "producer '%s' is already "
				    "defined at line %d", pc->name,
				    c->producers[j].line);
	}
	return 0;
}

static const struct key top_keys[] = {
	{ "log_level", set_log_level },
	{ "control", set_control },
	{ "server", set_server },
	{ "producers", set_producers },
	{ NULL, NULL }
};

/*
 * Walk the settings of a group: each must be a known key, given once.
 */
static int
parse_group(struct parse *p, config_setting_t *g, const struct key *keys,
    void *arg)
{
	int n;

	if (!config_setting_is_group(g))
		return fail(p, g, "'%s' must be a group: { ... }",
		    config_setting_name(g) ? config_setting_name(g) :
		    "list entry");
	n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(s);
		const struct key *k;

		for (k = keys; k->name != NULL; k++)
			if (strcmp(k->name, name) == 0)
				break;
		if (k->name == NULL)
			return fail(p, s, "unknown key '%s'", name);
		if (k->set(p, s, arg) == -1)
			return -1;
	}
	return 0;
}

static int
conf_defaults(struct wsflow_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->log_level = LOG_INFO;
	c->control.mode = 0660;
	c->server.batch_size = 1048576;
	c->server.max_connections = 1024;
	c->server.handshake_timeout = 10;
	c->server.idle_timeout = 60;
	c->server.metrics = true;
	if ((c->control.path = strdup("/run/wsflow/wsflowd.sock")) == NULL ||
	    (c->control.group = strdup("wsflow")) == NULL ||
	    (c->server.digest = strdup("sha256")) == NULL)
		return -1;
	c->server.listen = calloc(1, sizeof(*c->server.listen));
	if (c->server.listen == NULL ||
	    (c->server.listen[0].address = strdup("127.0.0.1")) == NULL)
		return -1;
	c->server.listen[0].port = 9000;
	c->server.nlisten = 1;
	return 0;
}

static int
conf_parse(config_t *cfg, int readrc, const char *name,
    struct wsflow_conf *conf, char *err, size_t errlen)
{
	struct parse p = { name, err, errlen };
	int rc = -1;

	if (readrc != CONFIG_TRUE) {
		const char *f = config_error_file(cfg);

		snprintf(err, errlen, "%s:%d: %s", f ? f : name,
		    config_error_line(cfg), config_error_text(cfg));
		memset(conf, 0, sizeof(*conf));
		return -1;
	}
	if (conf_defaults(conf) == -1) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto out;
	}
	if ((conf->path = strdup(name)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto out;
	}
	rc = parse_group(&p, config_root_setting(cfg), top_keys, conf);
out:
	if (rc == -1)
		conf_free(conf);
	return rc;
}

/*
 * What libconfig 1.5 gets wrong or lets a file do, refused up front with
 * the line: an integer beyond 32 bits without the L suffix (1.5 silently
 * truncates it), and @include (the daemon reads only the file it names).
 */
static int
prescan(const char *text, const char *name, char *err, size_t errlen)
{
	const char *p = text;
	int line = 1;

	while (*p != '\0') {
		if (*p == '\n') {
			line++;
			p++;
		} else if (*p == '"') {			/* string */
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				else if (*p == '\n')
					line++;
			}
			if (*p == '"')
				p++;
		} else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			p += strcspn(p, "\n");
		} else if (p[0] == '/' && p[1] == '*') {
			for (p += 2; *p != '\0' && !(p[0] == '*' && p[1] == '/');
			    p++)
				if (*p == '\n')
					line++;
			if (*p != '\0')
				p += 2;
		} else if (*p == '@') {
			snprintf(err, errlen, "%s:%d: @include and other "
			    "directives are not supported", name, line);
			return -1;
		} else if (*p >= '0' && *p <= '9' && (p == text ||
		    !(isalnum((unsigned char)p[-1]) || p[-1] == '_' ||
		    p[-1] == '.'))) {
			const char *start = p;
			int hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
			unsigned long long v;
			char *end;

			errno = 0;
			v = strtoull(p, &end, hex ? 16 : 10);
			p = end;
			if (*p == '.' || *p == 'e' || *p == 'E') {
				while (isalnum((unsigned char)*p) || *p == '.' ||
				    *p == '-' || *p == '+')
					p++;		/* a float */
				continue;
			}
			if (*p == 'L')
				continue;
			if (errno == ERANGE || v > INT32_MAX) {
				snprintf(err, errlen, "%s:%d: %.*s is beyond 32 "
				    "bits: write it with an L suffix (%.*sL)",
				    name, line, (int)(p - start), start,
				    (int)(p - start), start);
				return -1;
			}
		} else
			p++;
	}
	return 0;
}

/* The whole file, bounded; NULL with a message on failure. */
static char *
read_text(const char *path, char *err, size_t errlen)
{
	struct stat st;
	char *text = NULL;
	ssize_t n;
	size_t got = 0;
	int fd;

	/* O_NONBLOCK: a FIFO must not hang us before fstat says no. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) ==
	    -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > CONF_SIZE_MAX) {
		snprintf(err, errlen, "%s: %s", path, S_ISREG(st.st_mode) ?
		    "file too large" : "not a regular file");
		goto fail;
	}
	if ((text = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	while (got < (size_t)st.st_size && (n = read(fd, text + got,
	    (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	text[got] = '\0';
	if (memchr(text, '\0', got) != NULL) {
		snprintf(err, errlen, "%s: not a text file", path);
		goto fail;
	}
	close(fd);
	return text;
fail:
	if (fd != -1)
		close(fd);
	free(text);
	return NULL;
}

int
conf_load_file(const char *path, struct wsflow_conf *conf, char *err,
    size_t errlen)
{
	char *text;
	int rc;

	memset(conf, 0, sizeof(*conf));
	if ((text = read_text(path, err, errlen)) == NULL)
		return -1;
	rc = conf_load_string(text, path, conf, err, errlen);
	free(text);
	return rc;
}

int
conf_load_string(const char *text, const char *name,
    struct wsflow_conf *conf, char *err, size_t errlen)
{
	config_t cfg;
	int rc;

	if (prescan(text, name, err, errlen) == -1) {
		memset(conf, 0, sizeof(*conf));
		return -1;
	}
	config_init(&cfg);
	rc = conf_parse(&cfg, config_read_string(&cfg, text), name, conf,
	    err, errlen);
	config_destroy(&cfg);
	return rc;
}

void
conf_free(struct wsflow_conf *c)
{
	free_listen(c);
	for (size_t i = 0; i < c->nproducers; i++) {
		free(c->producers[i].url);
		free(c->producers[i].tls_ca);
	}
	free(c->producers);
	free(c->server.digest);
	free(c->control.path);
	free(c->control.group);
	free(c->path);
	memset(c, 0, sizeof(*c));
}

static const char *const mode_names[] = {
	[MODE_PRODUCER] = "producer",
	[MODE_STREAMING] = "streaming",
	[MODE_FRAME] = "frame",
	[MODE_MESSAGE] = "message",
};

const char *
conf_mode_name(enum wsflow_mode mode)
{
	return mode_names[mode];
}

int
conf_mode_parse(const char *name, enum wsflow_mode *mode)
{
	for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
		if (strcmp(name, mode_names[i]) == 0) {
			*mode = (enum wsflow_mode)i;
			return 0;
		}
	return -1;
}

const struct producer_conf *
conf_find_producer(const struct wsflow_conf *c, const char *name)
{
	for (size_t i = 0; i < c->nproducers; i++)
		if (strcmp(c->producers[i].name, name) == 0)
			return &c->producers[i];
	return NULL;
}

static bool
str_equal(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

/* Same stream behaviour: a reload leaves such a producer alone. */
bool
conf_producer_equal(const struct producer_conf *a,
    const struct producer_conf *b)
{
	return strcmp(a->name, b->name) == 0 && str_equal(a->url, b->url) &&
	    a->mode == b->mode && a->autostart == b->autostart &&
	    a->frame_size == b->frame_size &&
	    a->message_size == b->message_size && a->rate == b->rate &&
	    a->bytes == b->bytes && a->duration == b->duration &&
	    a->reconnect == b->reconnect && a->batch_size == b->batch_size &&
	    a->lws_framing == b->lws_framing &&
	    str_equal(a->tls_ca, b->tls_ca) &&
	    a->tls_verify == b->tls_verify;
}
