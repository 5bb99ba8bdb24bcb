/*
 * hostile: clients that misbehave, or lean on TCP, for the integration tests.
 *
 *   hostile slowhdr [-n N] [-b BYTES] [-H HOLD] ADDR:PORT
 *       Opens N connections (default 100) and sends on each an HTTP request
 *       line and header fields adding up to BYTES (default 60000), but never
 *       the blank line that ends the header block.  Prints "ready OPEN" once
 *       all are sent, then waits up to HOLD seconds (default 30) for the
 *       peer to close them, and prints "closed K of OPEN after SEC".
 *       Exit status 0 when every connection was closed by the peer, 3 if
 *       some were still open after HOLD.
 *
 *   hostile idle [-H HOLD] ADDR:PORT
 *       One connection that sends nothing; waits up to HOLD seconds (default
 *       30) for the peer to end it and prints "ended after SEC: WHAT".
 *       Exit status 0 when it ended, 3 if it was still open.
 *
 *   hostile keepalive [-a|-L] [-i IDLE] [-t INTVL] [-c CNT] [-u MS] [-H HOLD] ADDR:PORT
 *       Sets SO_KEEPALIVE with TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT
 *       (default 1/1/2) and, with -u, TCP_USER_TIMEOUT before connect (-a:
 *       right after connect; -L: after the first echo, when a proxy has
 *       surely accepted), exchanges "ping\n" with an echo server, prints "connected",
 *       then waits (blocking read) up to HOLD seconds (default 30) for the
 *       connection to end: "ended after SEC: ERROR" (or "EOF").
 *       Exit status 0 when it ended, 3 if it was still open, 2 on failure
 *       to connect.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tool_addr.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(const char *target)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	if (parse_addr(target, &ss, &len) < 0) {
		fprintf(stderr, "bad address %s\n", target);
		exit(64);
	}
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) < 0) {
		fprintf(stderr, "connect %s: %s\n", target, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* 1: the peer ended the connection (EOF or an error), 0: still open. */
static int ended(int fd, char *what, size_t wlen)
{
	char buf[4096];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n == 0) {
		snprintf(what, wlen, "EOF");
		return 1;
	}
	if (n < 0 && errno != EAGAIN) {
		snprintf(what, wlen, "%s", strerror(errno));
		return 1;
	}
	return 0;   /* data (a server's answer) or nothing yet */
}

static int cmd_slowhdr(int argc, char **argv)
{
	int n = 100, bytes = 60000, hold = 30, c, i, open = 0, closed = 0;
	int *fds, *done;
	char *hdr;
	size_t len;
	double t0;

	while ((c = getopt(argc, argv, "n:b:H:")) != -1) {
		switch (c) {
		case 'n': n = atoi(optarg); break;
		case 'b': bytes = atoi(optarg); break;
		case 'H': hold = atoi(optarg); break;
		default: return 64;
		}
	}
	if (optind != argc - 1 || n < 1 || bytes < 64)
		return 64;
	{
		/* Room for N descriptors, as far as the hard limit allows. */
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 16) {
			rl.rlim_cur = (rlim_t)n + 16 < rl.rlim_max ? (rlim_t)n + 16 : rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	fds = calloc((size_t)n, sizeof(*fds));
	done = calloc((size_t)n, sizeof(*done));
	hdr = malloc((size_t)bytes + 1);
	if (!fds || !done || !hdr)
		return 2;
	/* A request line, then "X-Pad: aaa..." lines of 100 bytes. */
	len = (size_t)snprintf(hdr, (size_t)bytes + 1, "GET /slow HTTP/1.1\r\nHost: x\r\n");
	while (len + 100 <= (size_t)bytes) {
		memcpy(hdr + len, "X-Pad: ", 7);
		memset(hdr + len + 7, 'a', 91);
		memcpy(hdr + len + 98, "\r\n", 2);
		len += 100;
	}
	for (i = 0; i < n; i++) {
		fds[i] = dial(argv[optind]);
		if (fds[i] < 0)
			continue;
		if (send_all(fds[i], hdr, len) < 0) {
			close(fds[i]);
			fds[i] = -1;
			continue;
		}
		open++;
	}
	printf("ready %d\n", open);
	fflush(stdout);
	t0 = now();
	while (closed < open && now() - t0 < hold) {
		char what[128];

		for (i = 0; i < n; i++) {
			if (fds[i] < 0 || done[i] || !ended(fds[i], what, sizeof(what)))
				continue;
			done[i] = 1;
			closed++;
		}
		usleep(100 * 1000);
	}
	printf("closed %d of %d after %.1f\n", closed, open, now() - t0);
	return closed == open && open == n ? 0 : 3;
}

static int wait_end(int fd, int hold, double t0)
{
	char buf[4096];
	struct pollfd p = { .fd = fd, .events = POLLIN };

	for (;;) {
		double left = hold - (now() - t0);
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) == 0) {
			printf("still open after %d s\n", hold);
			return 3;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n > 0)
			continue;
		printf("ended after %.1f: %s\n", now() - t0, n == 0 ? "EOF" : strerror(errno));
		return 0;
	}
}

static int cmd_idle(int argc, char **argv)
{
	int hold = 30, c, fd;

	while ((c = getopt(argc, argv, "H:")) != -1) {
		if (c != 'H')
			return 64;
		hold = atoi(optarg);
	}
	if (optind != argc - 1)
		return 64;
	fd = dial(argv[optind]);
	if (fd < 0)
		return 2;
	printf("connected\n");
	fflush(stdout);
	return wait_end(fd, hold, now());
}

static void set_keepalive(int fd, int idle, int intvl, int cnt, int ut)
{
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0 ||
	    (ut && setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut)) < 0)) {
		perror("setsockopt");
		exit(2);
	}
}

static int cmd_keepalive(int argc, char **argv)
{
	int after = 0, late = 0, idle = 1, intvl = 1, cnt = 2, ut = 0, hold = 30, c, fd;
	struct sockaddr_storage ss;
	socklen_t len;
	char buf[16];

	while ((c = getopt(argc, argv, "aLi:t:c:u:H:")) != -1) {
		switch (c) {
		case 'a': after = 1; break;
		case 'L': late = 1; break;
		case 'i': idle = atoi(optarg); break;
		case 't': intvl = atoi(optarg); break;
		case 'c': cnt = atoi(optarg); break;
		case 'u': ut = atoi(optarg); break;
		case 'H': hold = atoi(optarg); break;
		default: return 64;
		}
	}
	if (optind != argc - 1 || parse_addr(argv[optind], &ss, &len) < 0)
		return 64;
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		return 2;
	if (!after && !late)
		set_keepalive(fd, idle, intvl, cnt, ut);
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		fprintf(stderr, "connect %s: %s\n", argv[optind], strerror(errno));
		return 2;
	}
	if (after)
		set_keepalive(fd, idle, intvl, cnt, ut);
	if (send_all(fd, "ping\n", 5) < 0 || recv(fd, buf, sizeof(buf), 0) <= 0) {
		fprintf(stderr, "no echo: %s\n", strerror(errno));
		return 2;
	}
	if (late)
		set_keepalive(fd, idle, intvl, cnt, ut);
	printf("connected\n");
	fflush(stdout);
	return wait_end(fd, hold, now());
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: hostile slowhdr|idle|keepalive [OPTIONS] ADDR:PORT\n");
		return 64;
	}
	argv++;
	argc--;
	if (!strcmp(argv[0], "slowhdr"))
		return cmd_slowhdr(argc, argv);
	if (!strcmp(argv[0], "idle"))
		return cmd_idle(argc, argv);
	if (!strcmp(argv[0], "keepalive"))
		return cmd_keepalive(argc, argv);
	fprintf(stderr, "unknown command %s\n", argv[0]);
	return 64;
}
