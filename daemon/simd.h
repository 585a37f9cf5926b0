/*
 * simd.h — which variant of the data path's hot loops runs: ws_mask
 * (ws.c) and gen_fill (gen.c) are each compiled for the baseline x86-64
 * ("generic", what a CPU without AVX2 runs) and for AVX2, and pick one
 * before main: AVX2 where the CPU has it, unless the environment says
 * WSFLOW_GENERIC=1 (the tests run the baseline variants that way on a
 * machine with AVX2).  WSFLOW_NO_CLONES (the fuzz build, clang) or
 * another architecture: the generic variant only.
 */
#ifndef WSFLOW_SIMD_H
#define WSFLOW_SIMD_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && !defined(WSFLOW_NO_CLONES)
#define WSFLOW_AVX2	1
#else
#define WSFLOW_AVX2	0
#endif

static inline bool
wsflow_use_avx2(void)
{
#if WSFLOW_AVX2
	const char *g = getenv("WSFLOW_GENERIC");

	__builtin_cpu_init();	/* needed before main (a constructor) */
	return __builtin_cpu_supports("avx2") &&
	    !(g != NULL && strcmp(g, "1") == 0);
#else
	return false;
#endif
}

#endif
