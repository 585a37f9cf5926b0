/*
 * fuzz_config.c — libFuzzer target for configuration loading: whatever
 * the text, the loader gives a valid configuration or "name:line: msg",
 * never a crash or a leak of ours.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wsflow_conf conf;
	char err[WSFLOW_ERR_MAX], *text;

	/* @include would read other files: not what this target is for. */
	if (size > 65536 || memmem(data, size, "@include", 8) != NULL)
		return 0;
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	err[0] = '\0';
	if (conf_load_string(text, "fuzz", &conf, err, sizeof(err)) == 0) {
		if (conf.server.nlisten == 0 || conf.server.batch_size == 0)
			abort();
		conf_free(&conf);
	} else if (strncmp(err, "fuzz", 4) != 0)
		abort();
	free(text);
	return 0;
}
