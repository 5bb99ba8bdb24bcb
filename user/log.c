#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#include "addr.h"
#include "log.h"
#include "sproxy.h"

int slog_level = SLOG_INFO;
static FILE *connlog_fp;
static int connlog_json;

void slog(int level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warning", "info", "debug" };
	va_list ap;

	if (level > slog_level)
		return;
	fprintf(stderr, "sproxy-bpf: %s: ", names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int connlog_open(const char *path, int json)
{
	connlog_json = json;
	if (!path) {
		connlog_fp = stderr;
		return 0;
	}
	connlog_fp = fopen(path, "ae");
	if (!connlog_fp)
		return -errno;
	setvbuf(connlog_fp, NULL, _IOLBF, 0);
	return 0;
}

void connlog_close(void)
{
	if (connlog_fp && connlog_fp != stderr)
		fclose(connlog_fp);
	connlog_fp = NULL;
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

/* A string value: JSON-escaped, or in text quoted when it has spaces. */
static void put_str(FILE *fp, const char *s, int json)
{
	int quote = json || strpbrk(s, " \t\"=") || !*s;

	if (quote)
		fputc('"', fp);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(fp, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(fp, "\\u%04x", ch);
		else
			fputc(ch, fp);
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
	if (c->cgroup)
		field_str(fp, &first, "cgroup", c->cgroup);
	if (c->src)
		field_str(fp, &first, "src", addr_str(c->src, a, sizeof(a)));
	if (c->dst)
		field_str(fp, &first, "dst", addr_str(c->dst, a, sizeof(a)));
	if (c->host)
		field_str(fp, &first, "host", c->host);
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
	fflush(fp);
}
