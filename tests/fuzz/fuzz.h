/* What every harness shares. */
#ifndef SPROXY_FUZZ_H
#define SPROXY_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

/* An invariant broken: abort, so libFuzzer saves the input. */
#define ASSERT(c)                                                          \
	do {                                                               \
		if (!(c)) {                                                \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, \
				#c);                                       \
			abort();                                           \
		}                                                          \
	} while (0)

#endif
