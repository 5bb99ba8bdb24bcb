/* Fuzzer for user/json.c, which reads what comes out of a control socket.
 * Invariants: no input is read past its length (ASan), parsing ends, and
 * a tree that parses walks to the end with every string NUL-ended and
 * every object member named. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static size_t walk(const struct json *j, int depth)
{
	size_t n = 0;

	if (depth > 64)
		abort();            /* the reader bounds depth at 32 */
	for (; j; j = j->next) {
		n++;
		if (j->type == JSON_STR && !j->str)
			abort();
		if (j->str)
			n += strlen(j->str);
		if ((j->type == JSON_ARR || j->type == JSON_OBJ) && j->child) {
			if (j->type == JSON_OBJ)
				for (const struct json *c = j->child; c; c = c->next)
					if (!c->key || json_get(j, c->key) == NULL)
						abort();
			n += walk(j->child, depth + 1);
		}
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[160];
	/* An exact-size copy: a read past the end is ASan's to catch. */
	char *buf = malloc(size ? size : 1);
	struct json *j;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	j = json_parse(buf, size, err, sizeof(err));
	if (j)
		walk(j, 0);
	else if (!err[0])
		abort();            /* a refusal always says why */
	json_free(j);
	free(buf);
	return 0;
}
