/*
 * output_json.c — one JSON object on stdout, built with json-c.
 */
#include <stdio.h>

#include <json-c/json.h>

#include "output.h"
#include "version.h"

static struct json_object *doc, *list, *listeners;

static void
add_u64(struct json_object *o, const char *k, uint64_t v)
{
	/* json-c's int64 holds every counter we have (< 2^63). */
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

static void
add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void
json_head(enum action a)
{
	doc = json_object_new_object();
	list = NULL;
	listeners = NULL;
	if (a == ACT_STREAMS || a == ACT_DIGESTS) {
		list = json_object_new_array();
		json_object_object_add(doc, "streams", list);
	}
}

/* status's fields into o (status -j, and watch's "status"). */
static void
fill_status(struct json_object *o, const struct ctl_status *st)
{
	struct json_object *srv = json_object_new_object(),
	    *prod = json_object_new_object();

	add_str(o, "version", st->version);
	add_u64(o, "pid", st->pid);
	add_u64(o, "uptime_sec", st->uptime_sec);
	add_str(o, "config", st->conf_path);
	add_str(o, "digest", st->digest);
	add_u64(o, "batch_size", st->batch_size);
	add_u64(o, "stream_count", st->streams);
	add_u64(srv, "connections", st->connections);
	add_u64(srv, "connections_total", st->connections_total);
	add_u64(srv, "bytes_received", st->bytes_received);
	add_u64(srv, "digests_sent", st->digests_sent);
	json_object_object_add(o, "server", srv);
	add_u64(prod, "running", st->producers_running);
	add_u64(prod, "bytes_sent", st->bytes_sent);
	add_u64(prod, "digests_received", st->digests_received);
	add_u64(prod, "digests_verified", st->digests_verified);
	add_u64(prod, "digest_mismatches", st->digest_mismatches);
	json_object_object_add(o, "producers", prod);
}

static void
json_status(const struct ctl_status *st)
{
	fill_status(doc, st);
	listeners = json_object_new_array();
	json_object_object_add(doc, "listeners", listeners);
}

static struct json_object *
listener_object(const struct ctl_listener *l)
{
	struct json_object *o = json_object_new_object();

	add_str(o, "address", l->address);
	add_u64(o, "port", (uint64_t)l->port);
	add_str(o, "scheme", l->tls ? "wss" : "ws");
	return o;
}

static void
json_listener(const struct ctl_listener *l)
{
	struct json_object *o = listener_object(l);

	if (listeners != NULL)
		json_object_array_add(listeners, o);
	else
		json_object_put(o);
}

static struct json_object *
stream_object(enum action a, const struct ctl_stream *s)
{
	struct json_object *o = json_object_new_object();

	add_u64(o, "id", s->id);
	add_str(o, "name", s->name);
	add_str(o, "role", stream_role_name(s->role));
	if (a == ACT_DIGESTS) {
		add_u64(o, "digests_sent", s->role == ROLE_SERVER ? s->digests : 0);
		add_u64(o, "digests_received", s->role == ROLE_SERVER ? 0 : s->digests);
		add_u64(o, "digests_verified", s->digests_verified);
		add_u64(o, "digest_mismatches", s->digest_mismatches);
		add_str(o, "last_digest", s->last_digest);
	} else {
		add_str(o, "peer", s->peer);
		add_str(o, "mode", wsflow_mode_name(s->mode));
		add_str(o, "state", s->state);
		add_u64(o, "age_sec", s->age_sec);
		add_u64(o, "bytes", s->bytes);
		add_u64(o, "messages", s->messages);
		add_u64(o, "digests", s->digests);
		add_u64(o, "digests_verified", s->digests_verified);
		add_u64(o, "digest_mismatches", s->digest_mismatches);
		add_u64(o, "bytes_per_sec", s->bytes_per_sec);
		add_u64(o, "avg_bytes_per_sec", s->avg_bytes_per_sec);
		add_u64(o, "backpressure_pauses", s->backpressure_pauses);
		add_u64(o, "backpressure_usec", s->backpressure_usec);
		add_u64(o, "digest_latency_last_us", s->latency_last_us);
		add_u64(o, "digest_latency_max_us", s->latency_max_us);
		add_str(o, "last_digest", s->last_digest);
		/* How it ended; "" while it runs. */
		add_str(o, "end_reason", s->end_reason);
		add_str(o, "error", s->error);
		if (s->ended)
			json_object_object_add(o, "seconds",
			    json_object_new_double(s->run_usec / 1e6));
		add_u64(o, "reconnects", s->reconnects);
		/* The other end when it is a stream of this daemon (a
		 * producer to its own listener); null: not known here. */
		json_object_object_add(o, s->role == ROLE_PRODUCER ?
		    "receiver_stream" : "sender_stream", s->link_id != 0 ?
		    json_object_new_int64((int64_t)s->link_id) : NULL);
		/* A producer's own port on its last connection; null
		 * before one came up. */
		if (s->role == ROLE_PRODUCER)
			json_object_object_add(o, "local_port",
			    s->local_port != 0 ? json_object_new_int64(
			    s->local_port) : NULL);
		if (s->role == ROLE_PRODUCER) {
			struct json_object *lat = json_object_new_object(),
			    *con = json_object_new_object();
			struct hist_snap h;

			stream_latency(s, &h);
			add_u64(lat, "p50", hist_quantile(&h, 0.50));
			add_u64(lat, "p90", hist_quantile(&h, 0.90));
			add_u64(lat, "p99", hist_quantile(&h, 0.99));
			add_u64(lat, "max", h.max_us);
			add_u64(lat, "count", h.count);
			json_object_object_add(o, "digest_latency_us", lat);
			add_u64(con, "tcp", s->connect_tcp_us);
			add_u64(con, "tls", s->connect_tls_us);
			add_u64(con, "upgrade", s->connect_upgrade_us);
			json_object_object_add(o, "connect_us", con);
		}
		if (s->next_attempt_in_ms >= 0)
			add_u64(o, "next_attempt_in_ms",
			    (uint64_t)s->next_attempt_in_ms);
	}
	return o;
}

static void
json_stream(enum action a, const struct ctl_stream *s)
{
	struct json_object *o = stream_object(a, s);

	if (list != NULL)
		json_object_array_add(list, o);
	else
		json_object_object_add(doc, "stream", o);
}

/*
 * A failure is {"status": "failed", "error": text, "code": N}, N the
 * exit status: one number to test, whether in the shell or in the JSON.
 */
static void
json_failed(const char *msg, int status)
{
	if (doc == NULL)
		doc = json_object_new_object();
	add_str(doc, "status", "failed");
	add_str(doc, "error", msg);
	add_u64(doc, "code", (uint64_t)status);
	fprintf(stderr, "wsflowctl: %s\n", msg);
}

static void
json_result(enum action a, const struct ctl_result *r, int status)
{
	char msg[CTL_TEXT_MAX + 64];

	if (r->code != CTL_OK) {
		json_failed(r->message[0] ? r->message :
		    ctl_result_str(r->code), status);
		return;
	}
	add_str(doc, "status", "ok");
	if (r->id != 0)
		add_u64(doc, "id", r->id);
	if (a == ACT_START) {		/* the message is the name */
		add_str(doc, "name", r->message);
		/* An entry's parallel streams: ids id .. id + streams - 1. */
		add_u64(doc, "streams", r->count > 0 ? r->count : 1);
		snprintf(msg, sizeof(msg), "started producer %llu %s",
		    (unsigned long long)r->id, r->message);
		add_str(doc, "message", msg);
	} else
		add_str(doc, "message", r->message);
}

static void
json_tail(enum action a)
{
	(void)a;
	if (doc == NULL)
		return;
	printf("%s\n", json_object_to_json_string_ext(doc,
	    JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(doc);
	doc = NULL;
}

/* {"version": "0.2.0", "commands": [{"name", "args", "help"}, ...]} */
static void
json_help(void)
{
	struct json_object *o = json_object_new_object(),
	    *a = json_object_new_array();
	const char *name, *args, *help;

	for (size_t i = 0; command_info(i, &name, &args, &help) == 0; i++) {
		struct json_object *c = json_object_new_object();

		add_str(c, "name", name);
		add_str(c, "args", args);
		add_str(c, "help", help);
		json_object_array_add(a, c);
	}
	add_str(o, "version", WSFLOW_VERSION);
	json_object_object_add(o, "commands", a);
	printf("%s\n", json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static void
json_version(void)
{
	printf("{\"version\":\"%s\"}\n", WSFLOW_VERSION);
}

/* watch -j: {"time", "status": as status -j, "streams": as streams -j}. */
static void
json_snapshot(FILE *f, const struct snapshot *sn)
{
	struct json_object *o = json_object_new_object(),
	    *st = json_object_new_object(), *a = json_object_new_array();

	json_object_object_add(o, "time", json_object_new_double(sn->time));
	fill_status(st, sn->status);
	json_object_object_add(st, "listeners", a);
	for (size_t i = 0; i < sn->nlisteners; i++)
		json_object_array_add(a, listener_object(&sn->listeners[i]));
	json_object_object_add(o, "status", st);
	a = json_object_new_array();
	for (size_t i = 0; i < sn->nstreams; i++)
		json_object_array_add(a, stream_object(ACT_STREAMS,
		    &sn->streams[i]));
	json_object_object_add(o, "streams", a);
	fprintf(f, "%s\n", json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

const struct output json_output = {
	.head = json_head,
	.status = json_status,
	.listener = json_listener,
	.stream = json_stream,
	.result = json_result,
	.error = json_failed,
	.tail = json_tail,
	.help = json_help,
	.version = json_version,
	.snapshot = json_snapshot,
};
