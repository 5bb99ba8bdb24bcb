/*
 * echod: UDP and TCP echo server for the integration tests.
 *
 *   echod [-o LOG] ADDR:PORT...
 *
 * Binds UDP and TCP on every ADDR:PORT (203.0.113.10:7, [2001:db8::10]:7).
 * UDP: each datagram is answered, from the address it was bound to, with
 * "ADDR:PORT " followed by the datagram, so that a client can check who
 * answered through the payload as well as through the reply's source.
 * TCP: bytes are echoed back verbatim (one child per connection), which
 * tells whether a relay passed non-HTTP data through unchanged.
 * LOG, if given, gets one line per datagram or connection:
 *   udp local=ADDR:PORT peer=ADDR:PORT len=N
 *   tcp local=ADDR:PORT peer=ADDR:PORT
 * Prints "ready" on stdout once every socket is bound.
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
#include <sys/socket.h>
#include <unistd.h>

#define MAX_ADDRS 16

static int log_fd = -1;
static struct pollfd pfd[2 * MAX_ADDRS];	/* even: UDP, odd: TCP listener */
static int npfd;

#include "tool_addr.h"

/* One write(2) per line on an O_APPEND fd: children never interleave. */
static void log_line(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int len;

	if (log_fd < 0)
		return;
	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (len >= (int)sizeof(line))
		len = sizeof(line) - 1;
	if (write(log_fd, line, len) != len)
		perror("echod: log");
}

static int open_socket(const struct sockaddr_storage *ss, socklen_t len, int type)
{
	int fd = socket(ss->ss_family, type | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, len) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 64) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void udp_echo(int fd, const char *self)
{
	char in[65536], out[65536 + 64], peer_s[64];
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	ssize_t n;
	int hl;

	n = recvfrom(fd, in, sizeof(in), 0, (struct sockaddr *)&peer, &plen);
	if (n < 0)
		return;
	hl = snprintf(out, sizeof(out), "%s ", self);
	memcpy(out + hl, in, n);
	/* Bound to one address, so the reply leaves from that address. */
	sendto(fd, out, hl + n, 0, (struct sockaddr *)&peer, plen);
	log_line("udp local=%s peer=%s len=%ld\n", self, fmt_addr(&peer, peer_s, sizeof(peer_s)), n);
}

static void tcp_echo(int lfd, const char *self)
{
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	char peer_s[64], buf[65536];
	struct timeval tv = { .tv_sec = 30 };
	int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	log_line("tcp local=%s peer=%s\n", self, fmt_addr(&peer, peer_s, sizeof(peer_s)));
	if (fork() != 0) {
		close(fd);
		return;
	}
	for (int i = 0; i < npfd; i++)
		close(pfd[i].fd);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		char *p = buf;

		while (n > 0) {
			ssize_t w = write(fd, p, n);

			if (w <= 0)
				_exit(1);
			p += w;
			n -= w;
		}
	}
	/* Peer half-closed: answer with our FIN once everything was echoed. */
	shutdown(fd, SHUT_WR);
	_exit(0);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT };
	char self[2 * MAX_ADDRS][64];
	int i, opt;

	while ((opt = getopt(argc, argv, "o:")) != -1) {
		if (opt != 'o')
			goto usage;
		log_fd = open(optarg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (log_fd < 0) {
			perror(optarg);
			return 1;
		}
	}
	if (optind == argc || argc - optind > MAX_ADDRS)
		goto usage;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (i = optind; i < argc; i++) {
		struct sockaddr_storage ss;
		socklen_t len;

		if (parse_addr(argv[i], &ss, &len) < 0) {
			fprintf(stderr, "echod: bad address %s\n", argv[i]);
			goto usage;
		}
		for (int type = 0; type < 2; type++) {
			pfd[npfd].fd = open_socket(&ss, len, type ? SOCK_STREAM : SOCK_DGRAM);
			if (pfd[npfd].fd < 0) {
				fprintf(stderr, "echod: %s: %s\n", argv[i], strerror(errno));
				return 1;
			}
			pfd[npfd].events = POLLIN;
			fmt_addr(&ss, self[npfd], sizeof(self[npfd]));
			npfd++;
		}
	}
	printf("ready\n");
	fflush(stdout);

	for (;;) {
		if (poll(pfd, npfd, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("echod: poll");
			return 1;
		}
		for (i = 0; i < npfd; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			if (i % 2 == 0)
				udp_echo(pfd[i].fd, self[i]);
			else
				tcp_echo(pfd[i].fd, self[i]);
		}
	}
usage:
	fprintf(stderr, "usage: echod [-o LOG] ADDR:PORT...\n");
	return 2;
}
