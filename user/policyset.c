/* The rules and the upstreams as one counted set: see policyset.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "policyset.h"
#include "rules.h"

struct policyset *policyset_new(const struct options *o)
{
	struct policyset *ps = calloc(1, sizeof(*ps));

	if (!ps)
		return NULL;
	ps->refs = 1;
	ps->rules = rules_ref(o->rules);
	ps->n_upstream = o->n_upstream;
	memcpy(ps->upstream, o->upstream, sizeof(ps->upstream[0]) * (size_t)o->n_upstream);
	return ps;
}

struct policyset *policyset_ref(struct policyset *ps)
{
	if (ps)
		ps->refs++;
	return ps;
}

void policyset_unref(struct policyset *ps)
{
	if (!ps || --ps->refs > 0)
		return;
	rules_unref(ps->rules);
	/* Passwords do not linger in freed memory. */
	explicit_bzero(ps->upstream, sizeof(ps->upstream));
	free(ps);
}

const struct upstream *policyset_find(const struct policyset *ps, const char *name)
{
	for (int i = 0; ps && i < ps->n_upstream; i++)
		if (strcmp(ps->upstream[i].name, name) == 0)
			return &ps->upstream[i];
	return NULL;
}

const struct upstream *policyset_default(const struct policyset *ps)
{
	return policyset_find(ps, UPSTREAM_DEFAULT);
}

void policyset_describe(const struct policyset *ps, char *buf, size_t len)
{
	size_t n = 0;

	if (!len)
		return;
	buf[0] = 0;
	if (!ps->n_upstream)
		snprintf(buf, len, "no upstream");
	for (int i = 0; i < ps->n_upstream && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "upstreams ",
				      ps->upstream[i].label);
}
