/* The policy in force: the rules and the table of upstreams they name,
 * made together from one reading of the options and swapped in together
 * (SIGHUP), so that a rule never names an upstream of another reading.
 * Shared read-only and counted: a decision waiting on DNS, and every
 * connection or flow routed through one of its upstreams, holds the set
 * it was given until it ends, so that the upstream it goes through (and
 * the name in its log line) stays as it was when it was routed. */
#ifndef SPROXY_POLICYSET_H
#define SPROXY_POLICYSET_H
#include <stddef.h>

#include "upstream.h"

struct options;
struct rules;

struct policyset {
	int refs;
	struct rules *rules;           /* compiled against upstream[]'s names */
	int n_upstream;
	struct upstream upstream[UPSTREAM_MAX];
};

/* A set from options whose rules are compiled (cli_finish): the upstream
 * table copied, the rules shared.  One reference, or NULL out of memory. */
struct policyset *policyset_new(const struct options *o);
struct policyset *policyset_ref(struct policyset *ps);
/* The last reference frees the set (its credentials wiped). */
void policyset_unref(struct policyset *ps);

const struct upstream *policyset_find(const struct policyset *ps, const char *name);
/* The route a captured connection takes until rules pick one: the
 * upstream named "default" when there is one, else NULL (direct). */
const struct upstream *policyset_default(const struct policyset *ps);
/* "upstreams NAME (host:port), ..." or "no upstream", for the log:
 * never with credentials. */
void policyset_describe(const struct policyset *ps, char *buf, size_t len);

#endif
