#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#include "addr.h"
#include "log.h"
#include "privhelper.h"
#include "sproxy.h"

int slog_level = SLOG_INFO;
static FILE *connlog_fp;
static int connlog_json;
static const char *connlog_path;    /* NULL: stderr */
static int connlog_failing;         /* the last write failed (said once) */
static int connlog_held;            /* lines wait for connlog_release */

/* Whole lines, written at once: one write per line (or per batch of
 * lines, see connlog_hold), never a line in pieces. */
static void full_buffer(FILE *fp)
{
	setvbuf(fp, NULL, _IOFBF, 64 * 1024);
}

void slog(int level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warning", "info", "debug" };
	va_list ap;

	if (level > slog_level)
		return;
	flockfile(stderr);       /* one line, whichever loop says it */
	fprintf(stderr, "sproxy-bpf: %s: ", names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

/* A new file is private: the log names every process and destination. */
static FILE *open_append(const char *path)
{
	int fd = privhelper_open(path, PH_APPEND);   /* root's file, after the drop */
	FILE *fp;

	if (fd < 0)
		return NULL;
	fp = fdopen(fd, "a");
	if (!fp) {
		close(fd);
		return NULL;
	}
	full_buffer(fp);
	return fp;
}

int connlog_open(const char *path, int json)
{
	connlog_json = json;
	connlog_path = path;
	connlog_failing = 0;
	if (!path) {
		/* stderr is unbuffered: a stream of its own on the same file
		 * writes each line whole; stderr itself if there is none. */
		int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);

		connlog_fp = fd >= 0 ? fdopen(fd, "a") : NULL;
		if (connlog_fp)
			full_buffer(connlog_fp);
		else if (fd >= 0)
			close(fd);
		if (!connlog_fp)
			connlog_fp = stderr;
		return 0;
	}
	connlog_fp = open_append(path);
	return connlog_fp ? 0 : -errno;
}

int connlog_reopen(void)
{
	FILE *fp;

	if (!connlog_path)
		return 0;
	fp = open_append(connlog_path);
	if (!fp) {
		int e = errno;

		log_err("cannot reopen the connection log %s: %s; still writing to "
			"the file open before", connlog_path, strerror(e));
		return -e;
	}
	if (connlog_fp && connlog_fp != stderr)
		fclose(connlog_fp);
	connlog_fp = fp;
	connlog_failing = 0;
	log_info("reopened the connection log %s", connlog_path);
	return 0;
}

void connlog_close(void)
{
	if (connlog_fp && connlog_fp != stderr)
		fclose(connlog_fp);
	connlog_fp = NULL;
}

/* A failed write (a full disk) is said once, and its end once. */
static void check_written(FILE *fp)
{
	int bad = fflush(fp) == EOF || ferror(fp);
	int e = errno;

	if (!connlog_path)
		return;
	if (bad && !connlog_failing)
		log_err("cannot write the connection log %s: %s; lines are lost until "
			"it can be written again", connlog_path, strerror(e));
	else if (!bad && connlog_failing)
		log_info("the connection log %s is written again", connlog_path);
	connlog_failing = bad;
	clearerr(fp);
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0.
 * Overlong forms, surrogates and code points past U+10FFFF are invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* One piece of s in printable form, into out (at least 8 bytes): valid
 * UTF-8 as it is; control characters (C0, DEL, C1) escaped; a byte that is
 * not UTF-8 as \xNN in text and U+FFFD in JSON (which cannot carry raw
 * bytes).  Returns how many bytes of s it used. */
static size_t escape_one(const unsigned char *s, size_t n, int json, char out[8])
{
	size_t len = utf8_len(s, n);
	unsigned cp = s[0];

	if (len == 2 && s[0] == 0xc2 && s[1] < 0xa0)
		cp = s[1];               /* a C1 control character */
	else if (len > 1) {
		memcpy(out, s, len);
		out[len] = 0;
		return len;
	}
	if (len == 0) {
		if (json)
			snprintf(out, 8, "\\ufffd");
		else
			snprintf(out, 8, "\\x%02x", s[0]);
		return 1;
	}
	if (cp == '"' || cp == '\\')
		snprintf(out, 8, "\\%c", (char)cp);
	else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
		snprintf(out, 8, json ? "\\u%04x" : "\\x%02x", cp);
	else
		snprintf(out, 8, "%c", (char)cp);
	return len;
}

static char *escape(char *out, size_t outlen, const char *s, size_t n, int json)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t used = 0, i = 0;
	char piece[8];

	if (!outlen)
		return out;
	while (i < n && u[i]) {
		size_t step = escape_one(u + i, strnlen(s + i, n - i), json, piece);
		size_t plen = strlen(piece);

		if (used + plen >= outlen)
			break;
		memcpy(out + used, piece, plen);
		used += plen;
		i += step;
	}
	out[used] = 0;
	return out;
}

char *log_escape(char *out, size_t outlen, const char *s, size_t n)
{
	return escape(out, outlen, s, n, 0);
}

char *log_escape_json(char *out, size_t outlen, const char *s, size_t n)
{
	return escape(out, outlen, s, n, 1);
}

/* A line is built here and goes to the stream with one fwrite: a
 * connection ends many thousand times a second under load, and stdio's
 * formatting per field (and per character) was most of the daemon's time
 * on the kernel path.  A line longer than the buffer goes in pieces to
 * the same stream, which is fully buffered, so it is still written whole. */
struct line {
	FILE *fp;
	size_t n;
	char b[4096];
};

static void put(struct line *l, const char *s, size_t n)
{
	while (n) {
		size_t room = sizeof(l->b) - l->n, k = n < room ? n : room;

		memcpy(l->b + l->n, s, k);
		l->n += k;
		s += k;
		n -= k;
		if (l->n == sizeof(l->b)) {
			fwrite(l->b, 1, l->n, l->fp);
			l->n = 0;
		}
	}
}

static void put_c(struct line *l, char c)
{
	put(l, &c, 1);
}

static void put_s(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

static void put_u(struct line *l, unsigned long long v)
{
	char d[24], *p = d + sizeof(d);

	do
		*--p = (char)('0' + v % 10);
	while (v /= 10);
	put(l, p, (size_t)(d + sizeof(d) - p));
}

/* v as "%0*u", at most 9 digits. */
static void put_u0(struct line *l, unsigned v, int width)
{
	char d[9];

	for (int i = width - 1; i >= 0; i--, v /= 10)
		d[i] = (char)('0' + v % 10);
	put(l, d, (size_t)width);
}

/* UTC, to the millisecond; the date and time of day are made once a second. */
static void put_time(struct line *l)
{
	static char sec[64];
	static time_t sec_of = -1;
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	if (tv.tv_sec != sec_of) {
		gmtime_r(&tv.tv_sec, &tm);
		snprintf(sec, sizeof(sec), "%04d-%02d-%02dT%02d:%02d:%02d",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec);
		sec_of = tv.tv_sec;
	}
	put_s(l, sec);
	put_c(l, '.');
	put_u0(l, (unsigned)(tv.tv_usec / 1000), 3);
	put_c(l, 'Z');
}

/* Bytes that stand for themselves in text and in JSON. */
static int plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* A string value: JSON-escaped, or in text quoted when it has spaces. */
static void put_str(struct line *l, const char *s, int json)
{
	int quote = json || strpbrk(s, " \t\"=") || !*s;
	size_t n = strlen(s), i = 0, run;
	char piece[8];

	if (quote)
		put_c(l, '"');
	while (i < n) {
		for (run = 0; i + run < n && plain((unsigned char)s[i + run]); run++)
			;
		put(l, s + i, run);
		i += run;
		if (i < n) {
			i += escape_one((const unsigned char *)s + i, n - i, json, piece);
			put_s(l, piece);
		}
	}
	if (quote)
		put_c(l, '"');
}

/* The start of a field: ` key=` in text, `,"key":` in JSON. */
static void put_key(struct line *l, int *first, const char *key)
{
	if (connlog_json) {
		put_s(l, *first ? "\"" : ",\"");
		put_s(l, key);
		put(l, "\":", 2);
	} else {
		put_c(l, ' ');
		put_s(l, key);
		put_c(l, '=');
	}
	*first = 0;
}

static void field_str(struct line *l, int *first, const char *key, const char *val)
{
	put_key(l, first, key);
	put_str(l, val, connlog_json);
}

/* An address as addr_str writes it; IPv4 by hand (glibc makes it with
 * sprintf), the rest through addr_str. */
static void field_addr(struct line *l, int *first, const char *key,
		       const struct sockaddr *sa)
{
	char a[ADDR_STRLEN];

	if (sa->sa_family != AF_INET) {
		field_str(l, first, key, addr_str(sa, a, sizeof(a)));
		return;
	}
	const struct sockaddr_in *s = (const void *)sa;
	const unsigned char *ip = (const void *)&s->sin_addr;

	put_key(l, first, key);
	if (connlog_json)
		put_c(l, '"');
	for (int i = 0; i < 4; i++) {
		put_u(l, ip[i]);
		put_c(l, i < 3 ? '.' : ':');
	}
	put_u(l, ntohs(s->sin_port));
	if (connlog_json)
		put_c(l, '"');
}

static void field_num(struct line *l, int *first, const char *key, unsigned long long v)
{
	put_key(l, first, key);
	put_u(l, v);
}

/* seconds as "%.3f" (a duration is never negative). */
static void field_seconds(struct line *l, int *first, const char *key, double s)
{
	unsigned long long ms = s > 0 ? (unsigned long long)(s * 1000 + 0.5) : 0;

	put_key(l, first, key);
	put_u(l, ms / 1000);
	put_c(l, '.');
	put_u0(l, (unsigned)(ms % 1000), 3);
}

void connlog_write(const struct conn_log *c)
{
	struct line l = { .fp = connlog_fp ? connlog_fp : stderr };
	int first = 1;

	if (connlog_json) {
		put_c(&l, '{');
		put_key(&l, &first, "time");
		put_c(&l, '"');
		put_time(&l);
		put_c(&l, '"');
		field_str(&l, &first, "proto", c->proto);
	} else {
		put_time(&l);
		put_c(&l, ' ');
		put_s(&l, c->proto);
	}
	if (c->proc) {
		char comm[SPROXY_COMM_LEN + 1];

		memcpy(comm, c->proc->comm, SPROXY_COMM_LEN);
		comm[SPROXY_COMM_LEN] = 0;
		field_num(&l, &first, "pid", c->proc->tgid);
		field_str(&l, &first, "comm", comm);
		field_num(&l, &first, "uid", c->proc->uid);
	}
	if (c->capture) {
		char a2[ADDR_STRLEN], *colon;

		/* Gateway traffic: the hooks saw no process; the client is a host. */
		field_str(&l, &first, "capture", c->capture);
		if (!c->proc)
			field_str(&l, &first, "proc", "none");
		if (c->src) {
			addr_str(c->src, a2, sizeof(a2));
			colon = strrchr(a2, ':');          /* the port goes */
			if (colon)
				*colon = 0;
			if (a2[0] == '[' && colon && colon[-1] == ']')
				colon[-1] = 0;
			field_str(&l, &first, "client", a2[0] == '[' ? a2 + 1 : a2);
		}
	}
	if (c->cgroup)
		field_str(&l, &first, "cgroup", c->cgroup);
	if (c->netns)
		field_num(&l, &first, "netns", c->netns);
	if (c->src)
		field_addr(&l, &first, "src", c->src);
	if (c->dst)
		field_addr(&l, &first, "dst", c->dst);
	if (c->host)
		field_str(&l, &first, "host", c->host);
	if (c->sniffed)
		field_str(&l, &first, "sniffed", c->sniffed);
	if (c->route) {
		field_num(&l, &first, "rule", (unsigned long long)c->rule);
		field_str(&l, &first, "route", c->route);
	}
	if (c->via)
		field_str(&l, &first, "via", c->via);
	field_str(&l, &first, "path", c->path ? c->path : "proxy");
	field_num(&l, &first, "up", c->up);
	field_num(&l, &first, "down", c->down);
	field_seconds(&l, &first, "duration", c->duration);
	field_str(&l, &first, "result", c->result);
	if (c->error)
		field_str(&l, &first, "error", c->error);
	put_s(&l, connlog_json ? "}\n" : "\n");
	fwrite(l.b, 1, l.n, l.fp);
	if (!connlog_held)
		check_written(l.fp);
}

void connlog_hold(void)
{
	connlog_held = 1;
}

void connlog_release(void)
{
	connlog_held = 0;
	check_written(connlog_fp ? connlog_fp : stderr);
}
