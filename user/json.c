#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define MAX_DEPTH 32

struct parser {
	const char *s, *end, *p;
	char *err;
	size_t errlen;
	int failed;
};

static void *fail(struct parser *ps, const char *what)
{
	if (!ps->failed)
		snprintf(ps->err, ps->errlen, "%s at byte %zu", what, (size_t)(ps->p - ps->s));
	ps->failed = 1;
	return NULL;
}

static void blanks(struct parser *ps)
{
	while (ps->p < ps->end && strchr(" \t\r\n", *ps->p) && *ps->p)
		ps->p++;
}

static int hex4(struct parser *ps, unsigned *out)
{
	unsigned v = 0;

	if (ps->end - ps->p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = *ps->p++;

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* At the opening quote.  The decoded string is never longer than the
 * escaped one. */
static char *string(struct parser *ps)
{
	const char *start = ++ps->p;
	char *out, *o;

	while (ps->p < ps->end && *ps->p != '"')
		ps->p += *ps->p == '\\' ? 2 : 1;
	if (ps->p >= ps->end)
		return fail(ps, "unterminated string");
	out = o = malloc((size_t)(ps->p - start) + 1);
	if (!out)
		return fail(ps, "out of memory");
	ps->p = start;
	while (*ps->p != '"') {
		char c = *ps->p++;
		unsigned cp, lo;

		if ((unsigned char)c < 0x20) {
			free(out);
			return fail(ps, "control character in a string");
		}
		if (c != '\\') {
			*o++ = c;
			continue;
		}
		c = *ps->p++;
		switch (c) {
		case '"': case '\\': case '/': *o++ = c; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			if (hex4(ps, &cp) < 0)
				goto bad;
			if (cp >= 0xd800 && cp < 0xdc00 && ps->end - ps->p >= 6 &&
			    ps->p[0] == '\\' && ps->p[1] == 'u') {
				ps->p += 2;
				if (hex4(ps, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
					goto bad;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xd800 && cp < 0xe000) {
				cp = 0xfffd;
			}
			if (cp == 0)
				cp = 0xfffd;        /* a C string ends at NUL */
			o += put_utf8(o, cp);
			break;
		default:
			goto bad;
		}
	}
	ps->p++;
	*o = 0;
	return out;
bad:
	free(out);
	return fail(ps, "bad escape in a string");
}

static struct json *value(struct parser *ps, int depth);

/* The elements of an array or the members of an object, after [ or {. */
static struct json *members(struct parser *ps, struct json *j, int depth, char close)
{
	struct json **tail = &j->child;

	blanks(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		return j;
	}
	for (;;) {
		char *key = NULL;
		struct json *v;

		blanks(ps);
		if (close == '}') {
			if (ps->p >= ps->end || *ps->p != '"')
				return fail(ps, "expected a member name");
			key = string(ps);
			if (!key)
				return NULL;
			blanks(ps);
			if (ps->p >= ps->end || *ps->p != ':') {
				free(key);
				return fail(ps, "expected ':'");
			}
			ps->p++;
		}
		v = value(ps, depth + 1);
		if (!v) {
			free(key);
			return NULL;
		}
		v->key = key;
		*tail = v;
		tail = &v->next;
		blanks(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
			return j;
		}
		return fail(ps, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static struct json *value(struct parser *ps, int depth)
{
	struct json *j;
	char *end;

	blanks(ps);
	if (depth > MAX_DEPTH)
		return fail(ps, "nested too deep");
	if (ps->p >= ps->end)
		return fail(ps, "unexpected end");
	j = calloc(1, sizeof(*j));
	if (!j)
		return fail(ps, "out of memory");
	switch (*ps->p) {
	case '{':
	case '[':
		j->type = *ps->p == '{' ? JSON_OBJ : JSON_ARR;
		ps->p++;
		if (!members(ps, j, depth, j->type == JSON_OBJ ? '}' : ']'))
			goto bad;
		return j;
	case '"':
		j->type = JSON_STR;
		j->str = string(ps);
		if (!j->str)
			goto bad;
		return j;
	}
	if (ps->end - ps->p >= 4 && strncmp(ps->p, "null", 4) == 0) {
		ps->p += 4;
		return j;
	}
	if (ps->end - ps->p >= 4 && strncmp(ps->p, "true", 4) == 0) {
		j->type = JSON_BOOL;
		j->num = 1;
		ps->p += 4;
		return j;
	}
	if (ps->end - ps->p >= 5 && strncmp(ps->p, "false", 5) == 0) {
		j->type = JSON_BOOL;
		ps->p += 5;
		return j;
	}
	if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) {
		char buf[64];
		size_t n = 0;

		while (ps->p + n < ps->end && ps->p[n] && strchr("+-0123456789.eE", ps->p[n]))
			n++;
		if (n >= sizeof(buf))
			goto badnum;
		memcpy(buf, ps->p, n);
		buf[n] = 0;
		errno = 0;
		j->num = strtod(buf, &end);
		if (*end || errno)
			goto badnum;
		j->type = JSON_NUM;
		ps->p += n;
		return j;
	}
	fail(ps, "unexpected character");
	goto bad;
badnum:
	fail(ps, "bad number");
bad:
	json_free(j);
	return NULL;
}

struct json *json_parse(const char *s, size_t n, char *err, size_t errlen)
{
	struct parser ps = { s, s + n, s, err, errlen, 0 };
	struct json *j = value(&ps, 0);

	if (!j)
		return NULL;
	blanks(&ps);
	if (ps.p != ps.end) {
		json_free(j);
		return fail(&ps, "trailing bytes");
	}
	return j;
}

void json_free(struct json *j)
{
	while (j) {
		struct json *next = j->next;

		json_free(j->child);
		free(j->str);
		free(j->key);
		free(j);
		j = next;
	}
}

const struct json *json_get(const struct json *j, const char *key)
{
	if (!j || j->type != JSON_OBJ)
		return NULL;
	for (const struct json *c = j->child; c; c = c->next)
		if (strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

double json_num(const struct json *j, const char *key, double dflt)
{
	const struct json *v = json_get(j, key);

	return v && v->type == JSON_NUM ? v->num : dflt;
}

const char *json_str(const struct json *j, const char *key, const char *dflt)
{
	const struct json *v = json_get(j, key);

	return v && v->type == JSON_STR ? v->str : dflt;
}
