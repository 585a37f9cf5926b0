/*
 * tap.h — a tiny header-only test harness for the unit tests.
 *
 *	ok(cond, "what %d", n);		"ok - what 1" or "not ok - what 1 (at f.c:12)"
 *	skip("what", "why");		"ok - what # skip why"
 *	diag("got %s", s);		"# got s" (context; never counted)
 *	return done();			the plan "1..N" (TAP, at the end:
 *					a crash leaves none, tests/run fails
 *					it), "N passed, N failed" (", N
 *					skipped"); the exit status
 *
 * Every line is flushed at once, so a crash loses nothing already reported.
 */
#ifndef WSFLOW_TAP_H
#define WSFLOW_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int tap_passed, tap_failed, tap_skipped;

static inline bool __attribute__((format(printf, 4, 5)))
tap_ok(bool cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fputs(cond ? "ok - " : "not ok - ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (!cond)
		printf(" (at %s:%d)", file, line);
	putchar('\n');
	fflush(stdout);
	if (cond)
		tap_passed++;
	else
		tap_failed++;
	return cond;
}

/* True when cond holds; what follows the condition is a printf format. */
#define ok(cond, ...)	tap_ok((cond) ? true : false, __FILE__, __LINE__, \
			    __VA_ARGS__)

static inline void __attribute__((format(printf, 1, 2)))
diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static inline void
skip(const char *what, const char *why)
{
	printf("ok - %s # skip %s\n", what, why);
	fflush(stdout);
	tap_skipped++;
}

/* The last line of the output; returns the exit status for main. */
static inline int
done(void)
{
	printf("1..%d\n", tap_passed + tap_failed + tap_skipped);
	if (tap_skipped > 0)
		printf("%d passed, %d failed, %d skipped\n", tap_passed,
		    tap_failed, tap_skipped);
	else
		printf("%d passed, %d failed\n", tap_passed, tap_failed);
	fflush(stdout);
	return tap_failed ? 1 : 0;
}

#endif
