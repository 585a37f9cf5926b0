/*
 * producer.h — producer streams hosted by the daemon.
 */
#ifndef WSFLOW_PRODUCER_H
#define WSFLOW_PRODUCER_H

#include <stdbool.h>

#include "config.h"
#include "stream.h"

struct wsflowd;
struct producer;

struct producer	*producer_of(struct stream *);
const struct producer_conf *producer_conf(const struct producer *);

#endif
