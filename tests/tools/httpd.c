/*
 * httpd: a tiny HTTP/1.1 origin server for the integration tests.
 *
 *   httpd -o LOG [-d DIR] ADDR:PORT...
 *
 * ADDR:PORT is 203.0.113.10:8080 or [2001:db8::10]:8080. One child per
 * connection serves keep-alive and pipelined requests until
 * "Connection: close", HTTP/1.0 without keep-alive, or EOF; request bodies
 * may use Content-Length or chunked encoding, and "Expect: 100-continue" is
 * answered.
 *
 * Every request appends one tab-separated line to LOG, written with a single
 * write(2) on an O_APPEND descriptor so that concurrent children never
 * interleave:
 *
 *   METHOD PATH host=HOST peer=ADDR:PORT local=ADDR:PORT req=N rx=BYTES
 *   tx=BYTES body=BYTES uas=COUNT ua=USER-AGENT
 *
 * req counts requests on the connection (keep-alive shows as req=2 with the
 * same peer), rx/tx are the bytes of this request and its response as they
 * crossed the wire, uas is the number of User-Agent headers (a proxy that
 * adds a second one instead of appending shows uas=2) and ua is the first
 * one; it is the last field because it contains spaces.
 *
 * Routes:
 *   GET /files/NAME          the file DIR/NAME
 *   POST|PUT /upload/NAME    stores the request body in DIR/NAME
 *   anything else            200 with a body naming the request's
 *                            User-Agent, Host, peer and local address
 *
 * Prints "ready" on stdout once every socket listens.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LISTEN 16
#define MAX_HEADER (64 * 1024)
#define IO_CHUNK (64 * 1024)

static int log_fd = -1;
static const char *doc_dir = ".";

#include "tool_addr.h"

/* --- buffered connection --- */

struct conn {
	int fd;
	char buf[MAX_HEADER];
	size_t start, end;	/* unread bytes are buf[start..end) */
	unsigned long long rx, tx;	/* wire bytes of the current request */
	char peer[64], local[64];
};

/* Reads more bytes; 0 on EOF, -1 on error. Compacts the buffer first. */
static ssize_t conn_fill(struct conn *c)
{
	ssize_t n;

	if (c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	if (c->end == sizeof(c->buf))
		return -1;
	do
		n = read(c->fd, c->buf + c->end, sizeof(c->buf) - c->end);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		c->end += n;
	return n;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= w;
	}
	return 0;
}

static int conn_send(struct conn *c, const void *p, size_t n)
{
	if (write_all(c->fd, p, n) < 0)
		return -1;
	c->tx += n;
	return 0;
}

/* Returns one line without its CRLF (NUL-terminated in place), or NULL on
 * EOF/error/overlong line. */
static char *conn_line(struct conn *c)
{
	for (;;) {
		char *p = memmem(c->buf + c->start, c->end - c->start, "\r\n", 2);

		if (p) {
			char *line = c->buf + c->start;
			size_t used = p + 2 - line;

			*p = 0;
			c->start += used;
			c->rx += used;
			return line;
		}
		if (conn_fill(c) <= 0)
			return NULL;
	}
}

/* Moves n body bytes to out (or drops them when out < 0). */
static int conn_body(struct conn *c, unsigned long long n, int out)
{
	while (n > 0) {
		size_t have = c->end - c->start;

		if (have == 0) {
			if (conn_fill(c) <= 0)
				return -1;
			continue;
		}
		if (have > n)
			have = n;
		if (out >= 0 && write_all(out, c->buf + c->start, have) < 0)
			return -1;
		c->start += have;
		c->rx += have;
		n -= have;
	}
	return 0;
}

/* --- requests --- */

struct request {
	char method[16];
	char path[1024];
	char version[16];
	char host[256];
	char ua[4096];
	int uas;
	int has_length, chunked, expect_continue, conn_close, conn_keep;
	unsigned long long length;
};

static void copy_value(char *dst, size_t n, const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	snprintf(dst, n, "%s", v);
}

/* Reads the request line and headers; 0 on success, 1 on clean EOF before
 * a request, -1 on a broken request. */
static int read_head(struct conn *c, struct request *r)
{
	char *line;

	memset(r, 0, sizeof(*r));
	if (c->start == c->end && conn_fill(c) == 0)
		return 1;
	line = conn_line(c);
	if (!line)
		return -1;
	if (sscanf(line, "%15s %1023s %15s", r->method, r->path, r->version) != 3)
		return -1;
	while ((line = conn_line(c)) && *line) {
		char *colon = strchr(line, ':');

		if (!colon)
			return -1;
		*colon = 0;
		if (!strcasecmp(line, "Host")) {
			copy_value(r->host, sizeof(r->host), colon + 1);
		} else if (!strcasecmp(line, "User-Agent")) {
			if (r->uas++ == 0)
				copy_value(r->ua, sizeof(r->ua), colon + 1);
		} else if (!strcasecmp(line, "Content-Length")) {
			r->has_length = 1;
			r->length = strtoull(colon + 1, NULL, 10);
		} else if (!strcasecmp(line, "Transfer-Encoding")) {
			r->chunked = strcasestr(colon + 1, "chunked") != NULL;
		} else if (!strcasecmp(line, "Expect")) {
			r->expect_continue = strcasestr(colon + 1, "100-continue") != NULL;
		} else if (!strcasecmp(line, "Connection")) {
			r->conn_close = strcasestr(colon + 1, "close") != NULL;
			r->conn_keep = strcasestr(colon + 1, "keep-alive") != NULL;
		}
	}
	return line ? 0 : -1;
}

/* Reads the body into out (or drops it); returns its decoded length. */
static long long read_body(struct conn *c, const struct request *r, int out)
{
	unsigned long long total = 0;

	if (r->chunked) {
		for (;;) {
			char *line = conn_line(c), *end;
			unsigned long long n;

			if (!line)
				return -1;
			n = strtoull(line, &end, 16);
			if (end == line)
				return -1;
			if (n == 0)
				break;
			if (conn_body(c, n, out) < 0)
				return -1;
			total += n;
			line = conn_line(c);
			if (!line || *line)
				return -1;
		}
		/* Trailer section up to the empty line. */
		for (;;) {
			char *line = conn_line(c);

			if (!line)
				return -1;
			if (!*line)
				break;
		}
		return total;
	}
	if (r->has_length) {
		if (conn_body(c, r->length, out) < 0)
			return -1;
		return r->length;
	}
	return 0;
}

static void log_request(const struct conn *c, const struct request *r, int req, long long body)
{
	char line[8192];
	int n;

	n = snprintf(line, sizeof(line),
		     "%s\t%s\thost=%s\tpeer=%s\tlocal=%s\treq=%d\trx=%llu\ttx=%llu\tbody=%lld\tuas=%d\tua=%s\n",
		     r->method, r->path, r->host, c->peer, c->local, req, c->rx, c->tx,
		     body, r->uas, r->ua);
	if (n >= (int)sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (write_all(log_fd, line, n) < 0)
		perror("httpd: log");
}

static int send_head(struct conn *c, int status, const char *reason,
		     unsigned long long length, int closing)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %llu\r\n%s\r\n",
			 status, reason, length, closing ? "Connection: close\r\n" : "");

	return conn_send(c, head, n);
}

static int send_text(struct conn *c, int status, const char *reason, int closing,
		     const char *fmt, ...)
{
	char body[8192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(body))
		n = sizeof(body) - 1;
	if (send_head(c, status, reason, n, closing) < 0)
		return -1;
	return conn_send(c, body, n);
}

/* A NAME under /files/ or /upload/: one path component, no dot-dot. */
static const char *file_name(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);
	const char *name = path + n;

	if (strncmp(path, prefix, n) || !*name || strchr(name, '/') || name[0] == '.')
		return NULL;
	return name;
}

static int send_file(struct conn *c, const char *name, int closing)
{
	char path[4096], buf[IO_CHUNK];
	struct stat st;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", doc_dir, name);
	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return send_text(c, 404, "Not Found", closing, "no such file: %s\n", name);
	}
	if (send_head(c, 200, "OK", st.st_size, closing) < 0)
		goto fail;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (conn_send(c, buf, n) < 0)
			goto fail;
	close(fd);
	return n < 0 ? -1 : 0;
fail:
	close(fd);
	return -1;
}

/* Serves one request; returns 1 to keep the connection, 0 to close it,
 * -1 on error. */
static int serve_one(struct conn *c, int req)
{
	struct request r;
	const char *name;
	long long body;
	int closing, rc, out = -1;

	c->rx = c->tx = 0;
	rc = read_head(c, &r);
	if (rc != 0)
		return rc > 0 ? 0 : -1;
	closing = r.conn_close || (!strcmp(r.version, "HTTP/1.0") && !r.conn_keep);
	if (r.expect_continue && (r.chunked || r.length > 0) &&
	    conn_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
		return -1;

	name = file_name(r.path, "/upload/");
	if (name && (!strcmp(r.method, "POST") || !strcmp(r.method, "PUT"))) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s", doc_dir, name);
		out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (out < 0)
			perror(path);
	}
	body = read_body(c, &r, out);
	if (out >= 0)
		close(out);
	if (body < 0)
		return -1;

	name = file_name(r.path, "/files/");
	if (name && !strcmp(r.method, "GET"))
		rc = send_file(c, name, closing);
	else
		rc = send_text(c, 200, "OK", closing,
			       "ua=%s\nhost=%s\npeer=%s\nlocal=%s\nmethod=%s\npath=%s\nbody=%lld\n",
			       r.ua, r.host, c->peer, c->local, r.method, r.path, body);
	log_request(c, &r, req, body);
	if (rc < 0)
		return -1;
	return closing ? 0 : 1;
}

static void serve(int fd)
{
	static struct conn c;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct timeval tv = { .tv_sec = 30 };
	int req = 0;

	memset(&c, 0, sizeof(c));
	c.fd = fd;
	/* A stuck peer must not keep a child forever. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		fmt_addr(&ss, c.peer, sizeof(c.peer));
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		fmt_addr(&ss, c.local, sizeof(c.local));
	while (serve_one(&c, ++req) > 0)
		;
	close(fd);
}

static int listen_on(const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	if (parse_addr(spec, &ss, &len) < 0) {
		fprintf(stderr, "httpd: bad address %s (want ADDR:PORT or [ADDR]:PORT)\n", spec);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0) {
		fprintf(stderr, "httpd: %s: %s\n", spec, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void usage(void)
{
	fprintf(stderr, "usage: httpd -o LOG [-d DIR] ADDR:PORT...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct pollfd pfd[MAX_LISTEN];
	struct sigaction sa = { .sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT };
	const char *log_path = NULL;
	int i, n = 0, opt;

	while ((opt = getopt(argc, argv, "o:d:")) != -1) {
		if (opt == 'o')
			log_path = optarg;
		else if (opt == 'd')
			doc_dir = optarg;
		else
			usage();
	}
	if (!log_path || optind == argc || argc - optind > MAX_LISTEN)
		usage();
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log_fd < 0) {
		perror(log_path);
		return 1;
	}
	/* Children reap themselves; a vanished client must not kill us. */
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (i = optind; i < argc; i++) {
		pfd[n].fd = listen_on(argv[i]);
		if (pfd[n].fd < 0)
			return 1;
		pfd[n++].events = POLLIN;
	}
	printf("ready\n");
	fflush(stdout);

	for (;;) {
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("httpd: poll");
			return 1;
		}
		for (i = 0; i < n; i++) {
			int fd;

			if (!(pfd[i].revents & POLLIN))
				continue;
			fd = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			switch (fork()) {
			case 0:
				for (int j = 0; j < n; j++)
					close(pfd[j].fd);
				serve(fd);
				_exit(0);
			case -1:
				perror("httpd: fork");
				break;
			}
			close(fd);
		}
	}
}
