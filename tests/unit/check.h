/* Minimal unit-test support.  Each RUN() prints one "PASS suite/name" or
 * "FAIL suite/name" line, which tests/run counts; every failed CHECK prints
 * where and what. */
#ifndef SPROXY_CHECK_H
#define SPROXY_CHECK_H
#include <stdio.h>
#include <string.h>

static int check_failed_now;
static int check_failed_total;

#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond)) {                                             \
			printf("  check failed: %s:%d: %s\n", __FILE__,    \
			       __LINE__, #cond);                           \
			check_failed_now = 1;                              \
		}                                                          \
	} while (0)

#define CHECK_STREQ(a, b)                                                  \
	do {                                                               \
		const char *a_ = (a), *b_ = (b);                           \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                   \
			printf("  check failed: %s:%d: %s == %s\n"         \
			       "    got:      \"%s\"\n    expected: \"%s\"\n", \
			       __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)", \
			       b_ ? b_ : "(null)");                        \
			check_failed_now = 1;                              \
		}                                                          \
	} while (0)

#define RUN(suite, fn)                                                     \
	do {                                                               \
		check_failed_now = 0;                                      \
		fn();                                                      \
		printf("%s %s/%s\n", check_failed_now ? "FAIL" : "PASS",   \
		       suite, #fn);                                        \
		check_failed_total += check_failed_now;                    \
		fflush(stdout);                                            \
	} while (0)

#define CHECK_EXIT() return check_failed_total ? 1 : 0

#endif
