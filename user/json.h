/* A small JSON reader for the status client: the control socket's answer
 * as a tree.  Bounded in depth; strings decoded to UTF-8. */
#ifndef SPROXY_JSON_H
#define SPROXY_JSON_H
#include <stddef.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ };

struct json {
	enum json_type type;
	double num;                 /* NUM; BOOL: 0 or 1 */
	char *str;                  /* STR */
	char *key;                  /* a member of an object: its name */
	struct json *child, *next;  /* ARR, OBJ: the first element; the next one */
};

/* The value in s[0..n), nothing but blanks after it.  NULL with err
 * saying where and what is wrong (or out of memory). */
struct json *json_parse(const char *s, size_t n, char *err, size_t errlen);
void json_free(struct json *j);
/* A member of an object by name; NULL when j is no object or has none. */
const struct json *json_get(const struct json *j, const char *key);
/* A member's number or string, or dflt when absent or of another type. */
double json_num(const struct json *j, const char *key, double dflt);
const char *json_str(const struct json *j, const char *key, const char *dflt);

#endif
