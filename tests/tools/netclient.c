/*
 * netclient: the socket-level client of the integration tests. It checks
 * what an application sees through the proxy: the peer of a connected
 * socket, and the source of each UDP reply.
 *
 *   netclient tcp [-t SEC] [-g HOST [-P PATH] [-u UA] [-n N] [-H] [-o FILE]] ADDR:PORT
 *       Connects (AF_INET for 203.0.113.10:80, AF_INET6 for [2001:db8::10]:80
 *       and [::ffff:203.0.113.10]:80) and prints
 *           connected peer=ADDR:PORT local=ADDR:PORT pid=PID
 *       With -g, sends N (default 1) GET requests for PATH (default /) with
 *       Host HOST and User-Agent UA (default "netclient/1"; -u '' sends
 *       none) in a single write, i.e. pipelined, reads N responses and
 *       prints
 *           responses=N body=BYTES
 *       (bodies go to FILE with -o). -H shuts the write side down once the
 *       requests are sent (half-close) and then also waits for EOF.
 *       -x 'Name: value' adds a header line (repeatable); -S sends the
 *       requests one byte per write, 1 ms apart, so that a proxy sees the
 *       headers in as many pieces as possible.
 *
 *   netclient udp [-t SEC] [-n ROUNDS] ADDR:PORT ADDR:PORT...
 *       ONE unconnected socket sends "ping-R-I" to each address in turn and
 *       checks, with recvfrom, that the reply to ping-R-I comes from the
 *       address it was sent to and names it in its payload (see echod).
 *
 *   netclient udpc [-t SEC] ADDR:PORT
 *       Connected UDP: prints "connected peer=... local=..." from
 *       getpeername/getsockname, then one echo round trip, checked the same way.
 *
 *   netclient udpsend [-t SEC] ADDR:PORT HEX
 *       Sends the bytes HEX in one datagram and prints the reply, if any.
 *
 * Every line says what was seen. Exit status: 0 as expected, 1 an answer
 * came from the wrong address, 2 connect/socket failure, 3 no (complete)
 * answer within SEC seconds (default 5), 64 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_DESTS 16

static int timeout_ms = 5000;

#include "tool_addr.h"

/* Formats as a server bound to that address names itself: v4-mapped
 * addresses as plain IPv4 (echod binds 203.0.113.10, not ::ffff:...). */
static const char *fmt_server(const struct sockaddr_storage *ss, char *buf, size_t n)
{
	const struct sockaddr_in6 *a6 = (const void *)ss;

	if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
		struct sockaddr_storage v4 = { 0 };
		struct sockaddr_in *a = (struct sockaddr_in *)&v4;

		a->sin_family = AF_INET;
		a->sin_port = a6->sin6_port;
		memcpy(&a->sin_addr, &a6->sin6_addr.s6_addr[12], 4);
		return fmt_addr(&v4, buf, n);
	}
	return fmt_addr(ss, buf, n);
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Waits for fd to become readable until the absolute deadline. */
static int wait_readable(int fd, long long deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - now_ms();
		int r;

		if (left <= 0)
			return 0;
		r = poll(&p, 1, left);
		if (r < 0 && errno == EINTR)
			continue;
		return r;
	}
}

/* --- tcp --- */

struct reader {
	int fd;
	char buf[65536];
	size_t start, end;
	long long deadline;
	const char *error;
};

static ssize_t rd_fill(struct reader *r)
{
	ssize_t n;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->end == sizeof(r->buf)) {
		r->error = "response header too long";
		return -1;
	}
	if (wait_readable(r->fd, r->deadline) <= 0) {
		r->error = "timed out";
		return -1;
	}
	n = read(r->fd, r->buf + r->end, sizeof(r->buf) - r->end);
	if (n < 0)
		r->error = strerror(errno);
	else if (n == 0)
		r->error = "EOF";
	else
		r->end += n;
	return n;
}

/* Reads one response (skipping 1xx) and writes its body to out; returns
 * the body length or -1. Our httpd always sends Content-Length. */
static long long read_response(struct reader *r, FILE *out)
{
	for (;;) {
		char *hdr_end, *cl;
		long long len, left;
		int status;

		while (!(hdr_end = memmem(r->buf + r->start, r->end - r->start, "\r\n\r\n", 4)))
			if (rd_fill(r) <= 0)
				return -1;
		*hdr_end = 0;
		if (sscanf(r->buf + r->start, "HTTP/1.%*d %d", &status) != 1) {
			r->error = "not an HTTP response";
			return -1;
		}
		cl = strcasestr(r->buf + r->start, "\r\nContent-Length:");
		len = cl ? atoll(cl + 17) : 0;
		r->start = hdr_end + 4 - r->buf;
		if (status >= 100 && status < 200)
			continue;
		for (left = len; left > 0;) {
			size_t have = r->end - r->start;

			if (have == 0) {
				if (rd_fill(r) <= 0)
					return -1;
				continue;
			}
			if ((long long)have > left)
				have = left;
			if (out)
				fwrite(r->buf + r->start, 1, have, out);
			r->start += have;
			left -= have;
		}
		return len;
	}
}

static int connect_timeout(const struct sockaddr_storage *ss, socklen_t len, int type)
{
	int fd = socket(ss->ss_family, type | SOCK_CLOEXEC, 0);
	struct pollfd p;
	int err = 0, flags;
	socklen_t elen = sizeof(err);

	if (fd < 0) {
		printf("socket: %s\n", strerror(errno));
		return -1;
	}
	flags = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	if (connect(fd, (const struct sockaddr *)ss, len) < 0) {
		if (errno != EINPROGRESS) {
			printf("connect: %s\n", strerror(errno));
			close(fd);
			return -1;
		}
		p.fd = fd;
		p.events = POLLOUT;
		if (poll(&p, 1, timeout_ms) <= 0) {
			printf("connect: timed out\n");
			close(fd);
			return -1;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
		if (err) {
			struct sockaddr_storage local = { 0 };
			socklen_t llen = sizeof(local);
			char l[80];

			/* The local address tells which log line is ours. */
			getsockname(fd, (struct sockaddr *)&local, &llen);
			printf("connect: %s local=%s\n", strerror(err), fmt_addr(&local, l, sizeof(l)));
			close(fd);
			return -1;
		}
	}
	fcntl(fd, F_SETFL, flags);
	return fd;
}

static void print_connected(int fd)
{
	struct sockaddr_storage peer = { 0 }, local = { 0 };
	socklen_t plen = sizeof(peer), llen = sizeof(local);
	char p[80], l[80];

	if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
		snprintf(p, sizeof(p), "(getpeername: %s)", strerror(errno));
	else
		fmt_addr(&peer, p, sizeof(p));
	getsockname(fd, (struct sockaddr *)&local, &llen);
	printf("connected peer=%s local=%s pid=%d\n", p, fmt_addr(&local, l, sizeof(l)), getpid());
	fflush(stdout);
}

static int cmd_tcp(int argc, char **argv)
{
	const char *host = NULL, *path = "/", *ua = "netclient/1", *out_path = NULL;
	const char *extra[8];
	struct sockaddr_storage ss;
	static struct reader r;
	socklen_t len;
	int opt, fd, count = 1, half = 0, got = 0, slow = 0, nextra = 0;
	long long body = 0;
	FILE *out = NULL;
	char *req;
	size_t req_len = 0, extra_len = 0;
	ssize_t sent = 0;

	while ((opt = getopt(argc, argv, "t:g:P:u:n:Ho:x:S")) != -1) {
		switch (opt) {
		case 't': timeout_ms = atoi(optarg) * 1000; break;
		case 'g': host = optarg; break;
		case 'P': path = optarg; break;
		case 'u': ua = optarg; break;
		case 'n': count = atoi(optarg); break;
		case 'H': half = 1; break;
		case 'o': out_path = optarg; break;
		case 'S': slow = 1; break;
		case 'x':
			if (nextra == 8)
				return 64;
			extra[nextra++] = optarg;
			extra_len += strlen(optarg) + 2;
			break;
		default: return 64;
		}
	}
	if (optind + 1 != argc || count < 1 || parse_addr(argv[optind], &ss, &len) < 0)
		return 64;
	fd = connect_timeout(&ss, len, SOCK_STREAM);
	if (fd < 0)
		return 2;
	print_connected(fd);
	if (!host) {
		close(fd);
		return 0;
	}
	if (out_path && !(out = fopen(out_path, "w"))) {
		perror(out_path);
		return 2;
	}

	/* All requests in one buffer, one write: a pipelined burst. */
	req = malloc(count * (strlen(path) + strlen(host) + strlen(ua) + extra_len + 64));
	if (!req)
		return 2;
	for (int i = 0; i < count; i++) {
		req_len += sprintf(req + req_len, "GET %s HTTP/1.1\r\nHost: %s\r\n%s%s%s",
				   path, host, *ua ? "User-Agent: " : "", ua, *ua ? "\r\n" : "");
		for (int j = 0; j < nextra; j++)
			req_len += sprintf(req + req_len, "%s\r\n", extra[j]);
		req_len += sprintf(req + req_len, "\r\n");
	}
	if (slow) {
		struct timespec ms = { .tv_nsec = 1000000 };
		int one = 1;

		/* No Nagle: every byte leaves in a segment of its own. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		while (sent < (ssize_t)req_len && write(fd, req + sent, 1) == 1) {
			sent++;
			nanosleep(&ms, NULL);
		}
	} else {
		sent = write(fd, req, req_len);
	}
	if (sent != (ssize_t)req_len) {
		printf("responses=0 body=0 error=\"write: %s\"\n", strerror(errno));
		return 3;
	}
	free(req);
	if (half)
		shutdown(fd, SHUT_WR);

	r.fd = fd;
	r.deadline = now_ms() + timeout_ms;
	while (got < count) {
		long long n = read_response(&r, out);

		if (n < 0)
			break;
		body += n;
		got++;
	}
	/* After a half-close the server must still finish, then close. */
	if (got == count && half && r.start == r.end && rd_fill(&r) != 0) {
		if (!r.error || strcmp(r.error, "EOF"))
			printf("no EOF after the responses: %s\n", r.error ? r.error : "extra data");
	}
	if (got < count)
		printf("responses=%d body=%lld error=\"%s\"\n", got, body, r.error ? r.error : "?");
	else
		printf("responses=%d body=%lld\n", got, body);
	if (out)
		fclose(out);
	close(fd);
	return got == count ? 0 : 3;
}

/* --- udp --- */

/* Checks one echo reply: from the address it was sent to, and naming that
 * address in its payload ("ADDR:PORT ping-..."). */
static int check_reply(const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
		       const char *payload, const char *ping)
{
	char s[80], d[80], name[80];
	int ok;

	fmt_addr(src, s, sizeof(s));
	fmt_addr(dst, d, sizeof(d));
	fmt_server(dst, name, sizeof(name));
	ok = same_addr(src, dst) && !strncmp(payload, name, strlen(name)) &&
	     payload[strlen(name)] == ' ' && strstr(payload, ping);
	printf("%s %s: sent to %s, reply from %s: \"%s\"\n", ok ? "ok" : "MISMATCH", ping, d, s,
	       payload);
	return ok;
}

static int cmd_udp(int argc, char **argv)
{
	struct sockaddr_storage dst[MAX_DESTS];
	socklen_t dlen[MAX_DESTS];
	int opt, fd, n = 0, rounds = 1, bad = 0, missing = 0;

	while ((opt = getopt(argc, argv, "t:n:")) != -1) {
		if (opt == 't')
			timeout_ms = atoi(optarg) * 1000;
		else if (opt == 'n')
			rounds = atoi(optarg);
		else
			return 64;
	}
	for (int i = optind; i < argc && n < MAX_DESTS; i++, n++)
		if (parse_addr(argv[i], &dst[n], &dlen[n]) < 0 ||
		    dst[n].ss_family != dst[0].ss_family)
			return 64;
	if (n == 0 || rounds < 1)
		return 64;
	fd = socket(dst[0].ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		printf("socket: %s\n", strerror(errno));
		return 2;
	}
	printf("pid=%d\n", getpid());
	for (int round = 1; round <= rounds; round++) {
		int seen[MAX_DESTS] = { 0 }, got = 0;
		long long deadline;

		for (int i = 0; i < n; i++) {
			char ping[32], d[80];

			snprintf(ping, sizeof(ping), "ping-%d-%d", round, i);
			if (sendto(fd, ping, strlen(ping), 0, (struct sockaddr *)&dst[i], dlen[i]) < 0) {
				printf("sendto %s: %s\n", fmt_addr(&dst[i], d, sizeof(d)), strerror(errno));
				return 2;
			}
		}
		deadline = now_ms() + timeout_ms;
		while (got < n && wait_readable(fd, deadline) > 0) {
			struct sockaddr_storage src = { 0 };
			socklen_t slen = sizeof(src);
			char buf[2048], ping[32], *p;
			int r, i;
			ssize_t len = recvfrom(fd, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&src, &slen);

			if (len < 0) {
				printf("recvfrom: %s\n", strerror(errno));
				return 2;
			}
			buf[len] = 0;
			p = strstr(buf, "ping-");
			if (!p || sscanf(p, "ping-%d-%d", &r, &i) != 2 || r != round || i < 0 ||
			    i >= n || seen[i]) {
				char s[80];

				printf("MISMATCH unexpected reply from %s: \"%s\"\n",
				       fmt_addr(&src, s, sizeof(s)), buf);
				bad++;
				continue;
			}
			seen[i] = 1;
			got++;
			snprintf(ping, sizeof(ping), "ping-%d-%d", r, i);
			if (!check_reply(&src, &dst[i], buf, ping))
				bad++;
		}
		for (int i = 0; i < n; i++) {
			char d[80];

			if (!seen[i]) {
				printf("MISSING ping-%d-%d: no reply from %s within %d ms\n", round, i,
				       fmt_addr(&dst[i], d, sizeof(d)), timeout_ms);
				missing++;
			}
		}
	}
	close(fd);
	return bad ? 1 : missing ? 3 : 0;
}

static int cmd_udpc(int argc, char **argv)
{
	struct sockaddr_storage dst, src = { 0 };
	socklen_t dlen, slen = sizeof(src);
	char buf[2048];
	ssize_t len;
	int fd;

	if (argc - optind != 1 || parse_addr(argv[optind], &dst, &dlen) < 0)
		return 64;
	fd = connect_timeout(&dst, dlen, SOCK_DGRAM);
	if (fd < 0)
		return 2;
	print_connected(fd);
	if (send(fd, "ping-c", 6, 0) < 0) {
		printf("send: %s\n", strerror(errno));
		return 2;
	}
	if (wait_readable(fd, now_ms() + timeout_ms) <= 0) {
		printf("MISSING ping-c: no reply within %d ms\n", timeout_ms);
		return 3;
	}
	len = recvfrom(fd, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&src, &slen);
	if (len < 0) {
		printf("recv: %s\n", strerror(errno));
		return 2;
	}
	buf[len] = 0;
	return check_reply(&src, &dst, buf, "ping-c") ? 0 : 1;
}

static int cmd_udpsend(int argc, char **argv)
{
	struct sockaddr_storage dst, src = { 0 };
	socklen_t dlen, slen = sizeof(src);
	unsigned char msg[65536], buf[65536];
	const char *hex;
	size_t n = 0;
	ssize_t len;
	char s[80];
	int fd;

	if (argc - optind != 2 || parse_addr(argv[optind], &dst, &dlen) < 0)
		return 64;
	for (hex = argv[optind + 1]; hex[0] && hex[1] && n < sizeof(msg); hex += 2)
		if (sscanf(hex, "%2hhx", &msg[n++]) != 1)
			return 64;
	fd = socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, msg, n, 0, (struct sockaddr *)&dst, dlen) < 0) {
		printf("sendto: %s\n", strerror(errno));
		return 2;
	}
	printf("sent %zu bytes to %s\n", n, fmt_addr(&dst, s, sizeof(s)));
	if (wait_readable(fd, now_ms() + timeout_ms) <= 0) {
		printf("no reply within %d ms\n", timeout_ms);
		return 3;
	}
	len = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&src, &slen);
	if (len < 0) {
		printf("recvfrom: %s\n", strerror(errno));
		return 2;
	}
	printf("reply len=%zd from %s hex=", len, fmt_addr(&src, s, sizeof(s)));
	for (ssize_t i = 0; i < len; i++)
		printf("%02x", buf[i]);
	printf("\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	int rc = 64;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Each command parses its own options, from argv[1] on. */
	argc--;
	argv++;
	if (!strcmp(cmd, "tcp"))
		rc = cmd_tcp(argc, argv);
	else if (!strcmp(cmd, "udp"))
		rc = cmd_udp(argc, argv);
	else if (!strcmp(cmd, "udpc") || !strcmp(cmd, "udpsend")) {
		int opt;

		while ((opt = getopt(argc, argv, "t:")) != -1) {
			if (opt != 't')
				return 64;
			timeout_ms = atoi(optarg) * 1000;
		}
		rc = cmd[3] == 'c' ? cmd_udpc(argc, argv) : cmd_udpsend(argc, argv);
	}
	if (rc == 64)
		fprintf(stderr, "usage: netclient tcp|udp|udpc|udpsend ... (see tests/tools/netclient.c)\n");
	return rc;
}
