/*
 * config.c — read wsflow.conf with libconfig and check every key.
 *
 * Each group is described by a table of keys (name, kind, place, limits,
 * default) read by one setter; anything not in a table is an error, so a
 * typo never silently becomes a default.  Errors carry the file and line
 * of the offending setting.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libconfig.h>
#include <limits.h>
#include <stddef.h>
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

/*
 * One key of a group: its kind, where its value lives in the struct the
 * group fills, its limits and its default.  Every limit and default of
 * wsflow.conf(5) is in the tables below, and nowhere else.
 */
enum key_kind {
	KEY_INT,		/* int, min..max */
	KEY_U32,		/* uint32_t, min..max */
	KEY_U64,		/* uint64_t, min..max */
	KEY_BOOL,		/* bool */
	KEY_STR,		/* char *, not empty */
	KEY_STR_EMPTY,		/* char *, may be empty */
	KEY_WORD,		/* int: values[i] for words[i] */
	KEY_LINES,		/* char *: a list of strings, one a line */
	KEY_GROUP,		/* { ... } of keys, into the same struct */
	KEY_CUSTOM,		/* check() parses it alone */
};

struct key {
	const char	*name;
	enum key_kind	 kind;
	size_t		 off;		/* of the value in the group's struct */
	uint64_t	 min, max;	/* integers */
	uint64_t	 def;		/* integers, booleans, words: a value */
	const char	*sdef;		/* strings (NULL: none) */
	const char *const *words;	/* KEY_WORD, NULL-terminated */
	const int	*values;
	const struct key *group;	/* KEY_GROUP */
	/* Once stored: further checks; KEY_CUSTOM: the whole parse. */
	int		(*check)(struct parse *, config_setting_t *, void *obj);
	/* KEY_LINES: NULL if the item is good, else what is wrong. */
	const char	*(*item_check)(const char *);
};

#define INT_KEY(k, T, f, lo, hi, d)	{ .name = (k), .kind = KEY_INT,	\
	.off = offsetof(T, f), .min = (lo), .max = (hi), .def = (d) }
#define U32_KEY(k, T, f, lo, hi, d)	{ .name = (k), .kind = KEY_U32,	\
	.off = offsetof(T, f), .min = (lo), .max = (hi), .def = (d) }
#define U64_KEY(k, T, f, lo, hi, d)	{ .name = (k), .kind = KEY_U64,	\
	.off = offsetof(T, f), .min = (lo), .max = (hi), .def = (d) }
#define BOOL_KEY(k, T, f, d)		{ .name = (k), .kind = KEY_BOOL,	\
	.off = offsetof(T, f), .def = (d) }
#define STR_KEY(k, T, f, d, chk)	{ .name = (k), .kind = KEY_STR,	\
	.off = offsetof(T, f), .sdef = (d), .check = (chk) }
#define WORD_KEY(k, T, f, w, v, d)	{ .name = (k), .kind = KEY_WORD,	\
	.off = offsetof(T, f), .words = (w), .values = (v), .def = (d) }
#define GROUP_KEY(k, g, chk)		{ .name = (k), .kind = KEY_GROUP,	\
	.group = (g), .check = (chk) }	/* fills the same struct */
#define CUSTOM_KEY(k, fn)		{ .name = (k), .kind = KEY_CUSTOM,	\
	.check = (fn) }
#define LINES_KEY(k, T, f, chk)		{ .name = (k), .kind = KEY_LINES,	\
	.off = offsetof(T, f), .item_check = (chk) }

#define SIZE_MAX_KEY	((uint64_t)1 << 40)	/* keeps counts sane */

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

/* ---- the one setter ---- */

static int
get_int(struct parse *p, config_setting_t *s, const struct key *k,
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
		return fail(p, s, "'%s' must be an integer", k->name);
	}
	if (v < 0 || (uint64_t)v < k->min || (uint64_t)v > k->max)
		return fail(p, s, "'%s' = %lld is out of range (%llu..%llu)",
		    k->name, v, (unsigned long long)k->min,
		    (unsigned long long)k->max);
	*out = (uint64_t)v;
	return 0;
}

static int
set_str(struct parse *p, config_setting_t *s, char **field, const char *v)
{
	char *copy;

	if ((copy = strdup(v)) == NULL)
		return fail(p, s, "out of memory");
	free(*field);
	*field = copy;
	return 0;
}

static int
set_word(struct parse *p, config_setting_t *s, const struct key *k,
    int *field)
{
	const char *v = config_setting_type(s) == CONFIG_TYPE_STRING ?
	    config_setting_get_string(s) : NULL;
	char list[128] = "";

	for (size_t i = 0; k->words[i] != NULL; i++) {
		if (v != NULL && strcmp(v, k->words[i]) == 0) {
			*field = k->values[i];
			return 0;
		}
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
		    "%s\"%s\"", i ? ", " : "", k->words[i]);
	}
	if (v == NULL)
		return fail(p, s, "'%s' must be one of %s", k->name, list);
	return fail(p, s, "'%s' = \"%s\" is not one of %s", k->name, v, list);
}

/* ( "a", "b" ) as "a\nb"; ( ) as NULL. */
static int
set_lines(struct parse *p, config_setting_t *s, const struct key *k,
    char **field)
{
	size_t len = 0;
	int n;
	char *out;

	if (!config_setting_is_list(s) && !config_setting_is_array(s))
		return fail(p, s, "'%s' must be a list of strings: ( \"...\" )",
		    k->name);
	n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v, *why;

		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return fail(p, e, "'%s' must be a list of strings",
			    k->name);
		v = config_setting_get_string(e);
		if ((why = k->item_check(v)) != NULL)
			return fail(p, e, "'%s': \"%.64s\": %s", k->name, v,
			    why);
		len += strlen(v) + 1;
	}
	free(*field);
	*field = NULL;
	if (n == 0)
		return 0;
	if ((out = malloc(len + 1)) == NULL)
		return fail(p, s, "out of memory");
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (i > 0)
			strcat(out, "\n");
		strcat(out, config_setting_get_string(config_setting_get_elem(s,
		    (unsigned)i)));
	}
	*field = out;
	return 0;
}

static int
set_key(struct parse *p, config_setting_t *s, const struct key *k,
    void *obj)
{
	void *field = (char *)obj + k->off;
	uint64_t v = 0;
	int rc = 0;

	switch (k->kind) {
	case KEY_INT:
	case KEY_U32:
	case KEY_U64:
		if (get_int(p, s, k, &v) == -1)
			return -1;
		if (k->kind == KEY_INT)
			*(int *)field = (int)v;
		else if (k->kind == KEY_U32)
			*(uint32_t *)field = (uint32_t)v;
		else
			*(uint64_t *)field = v;
		break;
	case KEY_BOOL:
		if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			return fail(p, s, "'%s' must be true or false",
			    k->name);
		*(bool *)field = config_setting_get_bool(s) != 0;
		break;
	case KEY_STR:
	case KEY_STR_EMPTY:
		if (config_setting_type(s) != CONFIG_TYPE_STRING)
			return fail(p, s, "'%s' must be a string", k->name);
		if (k->kind == KEY_STR && *config_setting_get_string(s) == '\0')
			return fail(p, s, "'%s' must not be empty", k->name);
		rc = set_str(p, s, field, config_setting_get_string(s));
		break;
	case KEY_WORD:
		rc = set_word(p, s, k, field);
		break;
	case KEY_LINES:
		rc = set_lines(p, s, k, field);
		break;
	case KEY_GROUP:
		rc = parse_group(p, s, k->group, obj);
		break;
	case KEY_CUSTOM:
		return k->check(p, s, obj);
	}
	if (rc == 0 && k->check != NULL)
		rc = k->check(p, s, obj);
	return rc;
}

/* Every key's default, into obj (strings copied). */
static int
set_defaults(const struct key *keys, void *obj)
{
	for (const struct key *k = keys; k->name != NULL; k++) {
		void *field = (char *)obj + k->off;

		switch (k->kind) {
		case KEY_INT:
		case KEY_WORD:
			*(int *)field = (int)k->def;
			break;
		case KEY_U32:
			*(uint32_t *)field = (uint32_t)k->def;
			break;
		case KEY_U64:
			*(uint64_t *)field = k->def;
			break;
		case KEY_BOOL:
			*(bool *)field = k->def != 0;
			break;
		case KEY_STR:
		case KEY_STR_EMPTY:
			if (k->sdef != NULL &&
			    (*(char **)field = strdup(k->sdef)) == NULL)
				return -1;
			break;
		case KEY_GROUP:
			if (set_defaults(k->group, obj) == -1)
				return -1;
			break;
		case KEY_LINES:		/* none */
		case KEY_CUSTOM:
			break;
		}
	}
	return 0;
}

/* ---- checks beyond kind and range ---- */

static int
check_control_path(struct parse *p, config_setting_t *s, void *obj)
{
	const char *path = ((struct wsflow_conf *)obj)->control.path;

	if (path[0] != '/')
		return fail(p, s, "control path must be absolute");
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return fail(p, s, "control path is too long");
	return 0;
}

static int
set_control_mode(struct parse *p, config_setting_t *s, void *obj)
{
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
	((struct wsflow_conf *)obj)->control.mode = (mode_t)m;
	return 0;
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
check_digest(struct parse *p, config_setting_t *s, void *obj)
{
	const char *name = ((struct wsflow_conf *)obj)->server.digest;
	const EVP_MD *md = EVP_get_digestbyname(name);

	if (md == NULL)
		return fail(p, s, "unknown digest '%s' (any OpenSSL digest "
		    "name: sha256, sha512, sha3-256, blake2b512)", name);
	if (EVP_MD_get_size(md) <= 0)	/* XOFs like shake need a length */
		return fail(p, s, "digest '%s' has no fixed length", name);
	/* A name OpenSSL knows may still have no provider (md4, whirlpool
	 * live in the legacy one): every upgrade would fail. */
	if (!digest_usable(md))
		return fail(p, s, "digest '%s' cannot be used: no loaded "
		    "OpenSSL provider implements it", name);
	return 0;
}

/*
 * A TLS file may live in the service's credentials (LoadCredential=, see
 * systemd.exec(5)): "$CREDENTIALS_DIRECTORY/NAME" is read from there.
 * Outside the service (wsflowd -n from a shell) the variable is unset:
 * the service's directory is used, readable by root while it runs.
 */
#define CREDS_VAR	"$CREDENTIALS_DIRECTORY"
#define CREDS_DEFAULT	"/run/credentials/wsflow.service"

static int
expand_credentials(struct parse *p, config_setting_t *s, char **path)
{
	const char *dir, *rest;
	char *full;

	if (*path == NULL || strncmp(*path, CREDS_VAR, strlen(CREDS_VAR)) != 0)
		return 0;
	rest = *path + strlen(CREDS_VAR);
	if (*rest != '/' && *rest != '\0')
		return fail(p, s, "'%s': only " CREDS_VAR "/NAME is expanded",
		    *path);
	if ((dir = getenv("CREDENTIALS_DIRECTORY")) == NULL || *dir == '\0')
		dir = CREDS_DEFAULT;
	if (asprintf(&full, "%s%s", dir, rest) == -1)
		return fail(p, s, "out of memory");
	free(*path);
	*path = full;
	return 0;
}

static int
check_listen_tls(struct parse *p, config_setting_t *s, void *obj)
{
	struct listen_conf *l = obj;

	if (l->tls_cert == NULL || l->tls_key == NULL)
		return fail(p, s, "tls needs both 'cert' and 'key'");
	if (expand_credentials(p, s, &l->tls_cert) == -1 ||
	    expand_credentials(p, s, &l->tls_key) == -1)
		return -1;
	return 0;
}

static int
check_url(struct parse *p, config_setting_t *s, void *obj)
{
	struct wsurl u;
	const char *why;

	if (url_parse(((struct producer_conf *)obj)->url, &u, &why) == -1)
		return fail(p, s, "bad url: %s", why);
	return 0;
}

/* "" is the system store. */
static int
check_tls_ca(struct parse *p, config_setting_t *s, void *obj)
{
	struct producer_conf *pc = obj;

	if (pc->tls_ca[0] == '\0') {
		free(pc->tls_ca);
		pc->tls_ca = NULL;
	}
	return expand_credentials(p, s, &pc->tls_ca);
}

static int
set_p_name(struct parse *p, config_setting_t *s, void *obj)
{
	struct producer_conf *pc = obj;
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

/* An extra request header: "Name: value", nothing that ends a line. */
static const char *
check_header(const char *v)
{
	const char *colon = strchr(v, ':');

	for (const char *c = v; *c != '\0'; c++)
		if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
			return "control characters are not allowed";
	if (colon == NULL || colon == v)
		return "must be \"Name: value\"";
	for (const char *c = v; c < colon; c++)
		if (!isalnum((unsigned char)*c) && strchr("!#$%&'*+-.^_`|~",
		    *c) == NULL)
			return "the name must be an HTTP token";
	return NULL;
}

/* RFC 6455 §4.1: a subprotocol is an RFC 7230 token. */
static const char *
check_subprotocol(const char *v)
{
	if (*v == '\0')
		return "an empty subprotocol";
	for (const char *c = v; *c != '\0'; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f ||
		    strchr("()<>@,;:\\\"/[]?={}", *c) != NULL)
			return "must be a token: letters, digits and "
			    "!#$%&'*+-.^_`|~, no spaces or separators";
	return NULL;
}

/* An Origin as browsers send it: scheme://host[:port], no path. */
static const char *
check_origin(const char *v)
{
	const char *host = strstr(v, "://");

	for (const char *c = v; *c != '\0'; c++)
		if ((unsigned char)*c <= 0x20 || *c == 0x7f)
			return "control characters or spaces are not allowed";
	if (host == NULL || host == v || host[3] == '\0' ||
	    strchr(host + 3, '/') != NULL)
		return "must be scheme://host[:port], like "
		    "\"https://example.com\"";
	return NULL;
}

/* ---- the tables ---- */

static const char *const level_words[] = { "err", "warning", "notice",
    "info", "debug", NULL };
static const int level_values[] = { LOG_ERR, LOG_WARNING, LOG_NOTICE,
    LOG_INFO, LOG_DEBUG };
static const char *const framing_words[] = { "wsflow", "lws", NULL };
static const int framing_values[] = { FRAMING_WSFLOW, FRAMING_LWS };
static const int mode_values[] = { MODE_PRODUCER, MODE_STREAMING,
    MODE_FRAME, MODE_MESSAGE };

typedef struct wsflow_conf C;
typedef struct listen_conf L;
typedef struct producer_conf P;

static const struct key control_keys[] = {
	STR_KEY("path", C, control.path, WSFLOW_CTL_PATH, check_control_path),
	CUSTOM_KEY("mode", set_control_mode),
	{ .name = "group", .kind = KEY_STR_EMPTY, .off = offsetof(C,
	    control.group), .sdef = "wsflow" },
	{ NULL }
};

static const struct key listen_tls_keys[] = {
	STR_KEY("cert", L, tls_cert, NULL, NULL),
	STR_KEY("key", L, tls_key, NULL, NULL),
	{ NULL }
};

static const struct key listen_keys[] = {
	STR_KEY("address", L, address, "127.0.0.1", NULL),
	INT_KEY("port", L, port, 1, 65535, 9000),
	GROUP_KEY("tls", listen_tls_keys, check_listen_tls),
	{ NULL }
};

static int	set_listen(struct parse *, config_setting_t *, void *);

static const struct key server_keys[] = {
	CUSTOM_KEY("listen", set_listen),
	/* 1 is legal but a digest per octet. */
	U64_KEY("batch_size", C, server.batch_size, 1, SIZE_MAX_KEY, 1048576),
	STR_KEY("digest", C, server.digest, "sha256", check_digest),
	U32_KEY("max_connections", C, server.max_connections, 1, 1000000,
	    1024),
	U32_KEY("handshake_timeout", C, server.handshake_timeout, 1, 3600, 10),
	U32_KEY("idle_timeout", C, server.idle_timeout, 0, 86400, 60),
	U32_KEY("workers", C, server.workers, 0, WSFLOW_WORKERS_MAX, 0),
	BOOL_KEY("metrics", C, server.metrics, true),
	/* GET / without Upgrade: the live page, fed by /live. */
	BOOL_KEY("dashboard", C, server.dashboard, true),
	WORD_KEY("framing", C, server.framing, framing_words, framing_values,
	    FRAMING_WSFLOW),
	/* Empty: any Origin (and none) is welcome. */
	LINES_KEY("origins", C, server.origins, check_origin),
	/* Empty: offered subprotocols are never selected (spec §1). */
	LINES_KEY("subprotocols", C, server.subprotocols, check_subprotocol),
	/* Ended streams kept for wsflowctl streams -a and show. */
	U32_KEY("history", C, server.history, 0, 10000, 100),
	{ NULL }
};

static const struct key producer_tls_keys[] = {
	{ .name = "ca", .kind = KEY_STR_EMPTY, .off = offsetof(P, tls_ca),
	    .check = check_tls_ca },
	BOOL_KEY("verify", P, tls_verify, true),
	{ NULL }
};

static const struct key producer_keys[] = {
	CUSTOM_KEY("name", set_p_name),
	STR_KEY("url", P, url, NULL, check_url),
	WORD_KEY("mode", P, mode, wsflow_mode_names, mode_values,
	    MODE_PRODUCER),
	BOOL_KEY("autostart", P, autostart, true),
	U32_KEY("frame_size", P, frame_size, 1, WSFLOW_FRAME_SIZE_MAX, 65536),
	U64_KEY("message_size", P, message_size, 1, SIZE_MAX_KEY, 1048576),
	U64_KEY("rate", P, rate, 0, SIZE_MAX_KEY, 0),
	U64_KEY("bytes", P, bytes, 0, INT64_MAX, 0),
	U32_KEY("duration", P, duration, 0, 86400 * 365, 0),
	/* Each stream costs a descriptor: the fd limit bounds it anyway. */
	U32_KEY("parallel", P, parallel, 1, 100000, 1),
	U32_KEY("ramp", P, ramp, 0, 100000, 0),
	BOOL_KEY("reconnect", P, reconnect, true),
	/* Default 0: the server's batch_size. */
	U64_KEY("batch_size", P, batch_size, 1, SIZE_MAX_KEY, 0),
	WORD_KEY("framing", P, framing, framing_words, framing_values,
	    FRAMING_WSFLOW),
	LINES_KEY("headers", P, headers, check_header),
	GROUP_KEY("tls", producer_tls_keys, NULL),
	{ NULL }
};

static int	set_producers(struct parse *, config_setting_t *, void *);

static const struct key top_keys[] = {
	WORD_KEY("log_level", C, log_level, level_words, level_values,
	    LOG_INFO),
	GROUP_KEY("control", control_keys, NULL),
	GROUP_KEY("server", server_keys, NULL),
	CUSTOM_KEY("producers", set_producers),
	{ NULL }
};

/* ---- lists ---- */

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

/* A list of groups: n zeroed entries of size, each with its defaults. */
static void *
list_alloc(struct parse *p, config_setting_t *s, size_t size,
    const struct key *keys, size_t *n)
{
	char *v;

	*n = (size_t)config_setting_length(s);
	if ((v = calloc(*n ? *n : 1, size)) == NULL) {
		fail(p, s, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < *n; i++)
		if (set_defaults(keys, v + i * size) == -1) {
			fail(p, s, "out of memory");
			*n = i + 1;	/* free what was copied */
			return v;
		}
	return v;
}

static int
set_listen(struct parse *p, config_setting_t *s, void *obj)
{
	struct wsflow_conf *c = obj;
	size_t n;

	if (!config_setting_is_list(s) && !config_setting_is_array(s))
		return fail(p, s, "'listen' must be a list: ( { address = "
		    "\"127.0.0.1\"; port = 9000; } )");
	free_listen(c);		/* the default entry */
	/* ( ): no listener, a producer-only daemon. */
	if (config_setting_length(s) == 0)
		return 0;
	c->server.listen = list_alloc(p, s, sizeof(*c->server.listen),
	    listen_keys, &n);
	if (c->server.listen == NULL)
		return -1;
	c->server.nlisten = n;
	for (size_t i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct listen_conf *l = &c->server.listen[i];

		l->line = (int)config_setting_source_line(e);
		if (parse_group(p, e, listen_keys, l) == -1)
			return -1;
	}
	return 0;
}

static int
set_producers(struct parse *p, config_setting_t *s, void *obj)
{
	struct wsflow_conf *c = obj;
	size_t n;

	if (!config_setting_is_list(s))
		return fail(p, s, "'producers' must be a list: ( { name = "
		    "\"...\"; url = \"ws://...\"; } )");
	if ((c->producers = list_alloc(p, s, sizeof(*c->producers),
	    producer_keys, &n)) == NULL)
		return -1;
	c->nproducers = n;
	for (size_t i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct producer_conf *pc = &c->producers[i];

		pc->line = (int)config_setting_source_line(e);
		if (parse_group(p, e, producer_keys, pc) == -1)
			return -1;
		if (pc->name[0] == '\0')
			return fail(p, e, "producer needs a 'name'");
		if (pc->url == NULL)
			return fail(p, e, "producer '%s' needs a 'url'",
			    pc->name);
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->producers[j].name, pc->name) == 0)
				return fail(p, e, "producer '%s' is already "
				    "defined at line %d", pc->name,
				    c->producers[j].line);
	}
	return 0;
}

/*
 * Walk the settings of a group: each must be a known key, given once.
 */
static int
parse_group(struct parse *p, config_setting_t *g, const struct key *keys,
    void *obj)
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
		if (set_key(p, s, k, obj) == -1)
			return -1;
	}
	return 0;
}

static int
conf_defaults(struct wsflow_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->control.mode = WSFLOW_CTL_MODE;
	if (set_defaults(top_keys, c) == -1)
		return -1;
	/* One listener by default: an entry of listen_keys' defaults. */
	if ((c->server.listen = calloc(1, sizeof(*c->server.listen))) == NULL)
		return -1;
	c->server.nlisten = 1;
	return set_defaults(listen_keys, c->server.listen);
}

void
conf_server_params(const struct wsflow_conf *c, struct server_params *p)
{
	memset(p, 0, sizeof(*p));
	p->batch_size = c->server.batch_size;
	p->md = EVP_get_digestbyname(c->server.digest);
	p->idle_timeout = c->server.idle_timeout;
	p->handshake_timeout = c->server.handshake_timeout;
	p->metrics = c->server.metrics;
	p->dashboard = c->server.dashboard;
	p->framing = c->server.framing;
	p->origins = c->server.origins;
	p->subprotocols = c->server.subprotocols;
}

/* The defaults of a producer entry, for one started by hand. */
int
conf_producer_defaults(struct producer_conf *pc)
{
	memset(pc, 0, sizeof(*pc));
	return set_defaults(producer_keys, pc);
}

/* Every key, with its kind and limits, for checking the documentation. */
static void
walk_keys(const char *prefix, const struct key *keys, conf_key_fn fn,
    void *arg)
{
	static const char *const kinds[] = {
		[KEY_INT] = "integer", [KEY_U32] = "integer",
		[KEY_U64] = "integer", [KEY_BOOL] = "boolean",
		[KEY_STR] = "string", [KEY_STR_EMPTY] = "string",
		[KEY_WORD] = "word", [KEY_LINES] = "list", [KEY_GROUP] = "group",
		[KEY_CUSTOM] = "other",
	};

	for (const struct key *k = keys; k->name != NULL; k++) {
		char path[96];

		snprintf(path, sizeof(path), "%s%s%s", prefix,
		    *prefix ? "." : "", k->name);
		fn(path, kinds[k->kind], k->min, k->max, arg);
		if (k->kind == KEY_GROUP)
			walk_keys(path, k->group, fn, arg);
	}
}

void
conf_keys(conf_key_fn fn, void *arg)
{
	walk_keys("", top_keys, fn, arg);
	walk_keys("server.listen", listen_keys, fn, arg);
	walk_keys("producers", producer_keys, fn, arg);
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
		free(c->producers[i].headers);
	}
	free(c->producers);
	free(c->server.digest);
	free(c->server.origins);
	free(c->server.subprotocols);
	free(c->control.path);
	free(c->control.group);
	free(c->path);
	memset(c, 0, sizeof(*c));
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
	    a->parallel == b->parallel && a->ramp == b->ramp &&
	    a->reconnect == b->reconnect && a->batch_size == b->batch_size &&
	    a->framing == b->framing &&
	    str_equal(a->tls_ca, b->tls_ca) &&
	    str_equal(a->headers, b->headers) &&
	    a->tls_verify == b->tls_verify;
}
