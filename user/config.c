/* The config file, through libinih.  libinih splits "name = value" and
 * strips blanks; the line reader here counts lines (libinih does not say
 * which line a pair came from), refuses what libinih would cut or skip
 * without a word (an over-long line, a NUL byte, a [section], a line with
 * no '='), and values are taken as written: no inline comments (a password
 * may hold a ';'), no continuation lines. */
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "privhelper.h"

#define MAX_ERRORS 20

struct reader {
	const char *name;
	FILE *f;                      /* or the memory below */
	const char *mem;
	size_t len, off;
	int line;
	int bad_line;                 /* the line already has its error */
	config_apply_fn apply;
	void *ctx;
	char *err;
	size_t errlen, used;
	int n_errors;
	int secret;                   /* a value is a URL with a password */
};

static void add_error(struct reader *r, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void add_error(struct reader *r, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	r->bad_line = line;
	if (++r->n_errors > MAX_ERRORS || r->used + 1 >= r->errlen)
		return;
	n = snprintf(r->err + r->used, r->errlen - r->used, "%s%s:%d: ",
		     r->used ? "\n" : "", r->name, line);
	if (n > 0)
		r->used += (size_t)n;
	if (r->used + 1 >= r->errlen) {
		r->used = r->errlen - 1;
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(r->err + r->used, r->errlen - r->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->used += (size_t)n;
	if (r->used >= r->errlen)
		r->used = r->errlen - 1;
}

static int next_char(struct reader *r)
{
	if (r->f)
		return getc(r->f);
	return r->off < r->len ? (unsigned char)r->mem[r->off++] : EOF;
}

/* What a line holds, for the errors libinih would not report. */
static void check_line(struct reader *r, const char *s)
{
	s += strspn(s, " \t\r\n");
	if (!*s || *s == '#' || *s == ';')
		return;
	if (*s == '[')
		add_error(r, r->line, "sections are not used: write 'option = value' lines");
	else if (!strpbrk(s, "=:"))
		add_error(r, r->line, "not 'option = value': '%.*s'",
			  (int)strcspn(s, "\r\n") > 60 ? 60 : (int)strcspn(s, "\r\n"), s);
}

/* libinih's fgets: one whole line, counted. */
static char *read_line(char *str, int num, void *stream)
{
	struct reader *r = stream;
	size_t n = 0;
	int c, nul = 0, cut = 0;

	c = next_char(r);
	if (c == EOF)
		return NULL;
	r->line++;
	for (; c != EOF; c = next_char(r)) {
		if (c == 0)
			nul = 1;
		else if (n + 2 < (size_t)num)
			str[n++] = (char)c;
		else if (c != '\n' && c != '\r')
			cut = 1;
		if (c == '\n')
			break;
	}
	str[n] = 0;
	if (nul)
		add_error(r, r->line, "a NUL byte in the line");
	else if (cut)
		add_error(r, r->line, "a line longer than %d bytes", num - 2);
	else
		check_line(r, str);
	if (nul || cut)
		str[0] = 0;       /* nothing of it is applied */
	return str;
}

/* "scheme://user:password@host...". */
static int has_password(const char *v)
{
	const char *p = strstr(v, "://"), *at, *end;

	if (!p)
		return 0;
	p += 3;
	end = p + strcspn(p, "/?#");
	at = memchr(p, '@', (size_t)(end - p));
	return at && memchr(p, ':', (size_t)(at - p));
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
	struct reader *r = user;
	char origin[300], msg[1024];

	/* A [section] line is an error of its own; the pairs after it are
	 * still checked, as if it were not there. */
	(void)section;
	if (r->bad_line == r->line)
		return 1;
	snprintf(origin, sizeof(origin), "%s:%d", r->name, r->line);
	r->secret |= has_password(value);
	msg[0] = 0;
	if (r->apply(r->ctx, name, value, origin, msg, sizeof(msg)) < 0)
		add_error(r, r->line, "%s", msg[0] ? msg : "refused");
	return 1;
}

static int run(struct reader *r)
{
	int rc;

	ini_allow_multiline = 0;
	ini_allow_inline_comments = 0;
	ini_stop_on_first_error = 0;
	ini_max_line = CONFIG_MAX_LINE;
	if (r->errlen)
		r->err[0] = 0;
	rc = ini_parse_stream(read_line, r, on_pair, r);
	if (rc == -2)
		add_error(r, r->line, "out of memory");
	else if (rc > 0 && !r->n_errors)
		add_error(r, rc, "not 'option = value'");
	if (r->n_errors > MAX_ERRORS && r->used + 40 < r->errlen)
		r->used += (size_t)snprintf(r->err + r->used, r->errlen - r->used,
					    "\n%s: %d more errors", r->name,
					    r->n_errors - MAX_ERRORS);
	return r->n_errors ? -1 : 0;
}

int config_load_mem(const char *name, const char *text, size_t len,
		    config_apply_fn apply, void *ctx, char *err, size_t errlen)
{
	struct reader r = { .name = name, .mem = text, .len = len, .apply = apply,
			    .ctx = ctx, .err = err, .errlen = errlen };

	return run(&r);
}

int config_load(const char *path, config_apply_fn apply, void *ctx, char *err,
		size_t errlen)
{
	struct reader r = { .name = path, .apply = apply, .ctx = ctx, .err = err,
			    .errlen = errlen };
	struct stat st;
	int rc, fd;

	/* After the drop, a root-only file is read through the helper. */
	fd = privhelper_open(path, PH_READ);
	r.f = fd < 0 ? NULL : fdopen(fd, "re");
	if (!r.f && fd >= 0)
		close(fd);
	if (!r.f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	rc = run(&r);
	if (r.secret && fstat(fileno(r.f), &st) == 0 && (st.st_mode & 0044))
		log_warn("%s holds a password and is readable by %s (mode %04o): "
			 "chmod 600 it", path, st.st_mode & 0004 ? "everyone" : "its group",
			 (unsigned)(st.st_mode & 07777));
	if (ferror(r.f) && !rc) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		rc = -1;
	}
	fclose(r.f);
	return rc;
}
