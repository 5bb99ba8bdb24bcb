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

static void iso_time(char buf[64], size_t len)
{
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
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

/* A string value: JSON-escaped, or in text quoted when it has spaces. */
static void put_str(FILE *fp, const char *s, int json)
{
	int quote = json || strpbrk(s, " \t\"=") || !*s;
	size_t n = strlen(s), i = 0;
	char piece[8];

	if (quote)
		fputc('"', fp);
	while (i < n) {
		i += escape_one((const unsigned char *)s + i, n - i, json, piece);
		fputs(piece, fp);
	}
	if (quote)
		fputc('"', fp);
}

static void field_str(FILE *fp, int *first, const char *key, const char *val)
{
	if (connlog_json) {
		fprintf(fp, "%s\"%s\":", *first ? "" : ",", key);
		put_str(fp, val, 1);
	} else {
		fprintf(fp, " %s=", key);
		put_str(fp, val, 0);
	}
	*first = 0;
}

static void field_num(FILE *fp, int *first, const char *key, unsigned long long v)
{
	if (connlog_json)
		fprintf(fp, "%s\"%s\":%llu", *first ? "" : ",", key, v);
	else
		fprintf(fp, " %s=%llu", key, v);
	*first = 0;
}

void connlog_write(const struct conn_log *c)
{
	FILE *fp = connlog_fp ? connlog_fp : stderr;
	char t[64], a[ADDR_STRLEN], dur[32];
	int first = 1;

	iso_time(t, sizeof(t));
	if (connlog_json)
		fputc('{', fp);
	else
		fputs(t, fp);
	if (connlog_json)
		field_str(fp, &first, "time", t);
	if (connlog_json)
		field_str(fp, &first, "proto", c->proto);
	else
		fprintf(fp, " %s", c->proto);
	if (c->proc) {
		char comm[SPROXY_COMM_LEN + 1];

		memcpy(comm, c->proc->comm, SPROXY_COMM_LEN);
		comm[SPROXY_COMM_LEN] = 0;
		field_num(fp, &first, "pid", c->proc->tgid);
		field_str(fp, &first, "comm", comm);
		field_num(fp, &first, "uid", c->proc->uid);
	}
	if (c->capture) {
		char a2[ADDR_STRLEN], *colon;

		/* Gateway traffic: the hooks saw no process; the client is a host. */
		field_str(fp, &first, "capture", c->capture);
		if (!c->proc)
			field_str(fp, &first, "proc", "none");
		if (c->src) {
			addr_str(c->src, a2, sizeof(a2));
			colon = strrchr(a2, ':');          /* the port goes */
			if (colon)
				*colon = 0;
			if (a2[0] == '[' && colon && colon[-1] == ']')
				colon[-1] = 0;
			field_str(fp, &first, "client", a2[0] == '[' ? a2 + 1 : a2);
		}
	}
	if (c->cgroup)
		field_str(fp, &first, "cgroup", c->cgroup);
	if (c->netns)
		field_num(fp, &first, "netns", c->netns);
	if (c->src)
		field_str(fp, &first, "src", addr_str(c->src, a, sizeof(a)));
	if (c->dst)
		field_str(fp, &first, "dst", addr_str(c->dst, a, sizeof(a)));
	if (c->host)
		field_str(fp, &first, "host", c->host);
	if (c->sniffed)
		field_str(fp, &first, "sniffed", c->sniffed);
	if (c->route) {
		field_num(fp, &first, "rule", (unsigned long long)c->rule);
		field_str(fp, &first, "route", c->route);
	}
	if (c->via)
		field_str(fp, &first, "via", c->via);
	field_str(fp, &first, "path", c->path ? c->path : "proxy");
	field_num(fp, &first, "up", c->up);
	field_num(fp, &first, "down", c->down);
	snprintf(dur, sizeof(dur), "%.3f", c->duration);
	if (connlog_json)
		fprintf(fp, ",\"duration\":%s", dur);
	else
		fprintf(fp, " duration=%s", dur);
	field_str(fp, &first, "result", c->result);
	if (c->error)
		field_str(fp, &first, "error", c->error);
	fputs(connlog_json ? "}\n" : "\n", fp);
	if (!connlog_held)
		check_written(fp);
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
