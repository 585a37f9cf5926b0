/*
 * version.h — the version of wsflow, one string for wsflowd and
 * wsflowctl alike.
 */
#ifndef WSFLOW_VERSION_H
#define WSFLOW_VERSION_H

#define WSFLOW_VERSION		"0.2.0"

#endif
