/*
 * udpprobe: one datagram socket driven step by step, for the UDP cases of
 * the integration tests (who owns a flow, connected sockets over time,
 * pool limits, ping sockets, broadcast).
 *
 *   udpprobe [-t SEC] KIND STEP...
 *
 * KIND: udp4, udp6 (dual-stack), icmp4, icmp6 (ping sockets).
 * STEPs, run in order on the one socket:
 *   connect ADDR:PORT     connect(); prints "connect ok" or "connect error=E"
 *   disconnect            connect() to AF_UNSPEC
 *   send TEXT             send() on the connected socket
 *   sendto ADDR:PORT TEXT sendto()
 *   spray ADDR PORT P N TEXT
 *                         N datagrams to ADDR:PORT .. ADDR:PORT+P-1 in turn
 *                         (P flows), 1 ms apart; prints "spray ok=A error=B"
 * A TEXT of "@N" stands for N bytes of 'x'.
 *   recv                  waits SEC (default 3) for one datagram; prints
 *                         "reply from ADDR:PORT text=TEXT", "recv timeout"
 *                         or "recv error=E"
 *   ping ADDR             ICMP echo request (KIND icmp*), with send() after
 *                         a connect step, else sendto(); prints
 *                         "icmp reply from ADDR" or "icmp timeout"
 *   peer, local           getpeername / getsockname: "peer=ADDR:PORT"
 *   broadcast             sets SO_BROADCAST
 *   ready                 prints "ready"
 *   wait FILE             waits (at most 60 s) until FILE exists
 *   sleep MS
 * Errors of send steps print "send error=E" (E as strerror) and go on.
 * Exit status: 0 when every step ran, 64 usage, 2 no socket.
 */
#include <errno.h>
#include <netinet/ip_icmp.h>
#include <netinet/icmp6.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tool_addr.h"

static int timeout_ms = 3000;
static int connected;   /* ping sends with send() after a connect step */

static void usage(void)
{
	fprintf(stderr, "usage: udpprobe [-t SEC] udp4|udp6|icmp4|icmp6 STEP...\n");
	exit(64);
}

static void addr_arg(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	if (parse_addr(s, ss, len) < 0) {
		fprintf(stderr, "bad address %s\n", s);
		exit(64);
	}
}

static void do_send(int fd, const struct sockaddr_storage *to, socklen_t len,
		    const void *data, size_t n, const char *what)
{
	ssize_t r = to ? sendto(fd, data, n, 0, (const struct sockaddr *)to, len)
		       : send(fd, data, n, 0);

	if (r < 0)
		printf("%s error=%s\n", what, strerror(errno));
	else
		printf("%s ok\n", what);
}

static ssize_t recv_one(int fd, void *buf, size_t n, struct sockaddr_storage *from)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	socklen_t fl = sizeof(*from);

	if (poll(&p, 1, timeout_ms) <= 0)
		return -2;
	return recvfrom(fd, buf, n, MSG_DONTWAIT, (struct sockaddr *)from, &fl);
}

static void ping(int fd, int v6, const char *host)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char buf[256], a[128], spec[128];
	ssize_t n;

	memset(buf, 0, sizeof(buf));
	snprintf(spec, sizeof(spec), v6 ? "[%s]:0" : "%s:0", host);
	addr_arg(spec, &ss, &len);
	if (v6) {
		struct icmp6_hdr *h = (void *)buf;

		h->icmp6_type = ICMP6_ECHO_REQUEST;
		h->icmp6_seq = htons(1);
	} else {
		struct icmphdr *h = (void *)buf;

		h->type = ICMP_ECHO;
		h->un.echo.sequence = htons(1);
	}
	memcpy(buf + 8, "udpprobe", 8);
	if ((connected ? send(fd, buf, 16, 0)
		       : sendto(fd, buf, 16, 0, (struct sockaddr *)&ss, len)) < 0) {
		printf("ping error=%s\n", strerror(errno));
		return;
	}
	n = recv_one(fd, buf, sizeof(buf), &ss);
	if (n == -2)
		printf("icmp timeout\n");
	else if (n < 0)
		printf("icmp error=%s\n", strerror(errno));
	else
		printf("icmp reply from %s\n", fmt_addr(&ss, a, sizeof(a)));
}

/* "@N": N bytes of 'x'; anything else: itself. */
static const char *text(const char *arg, char *buf, size_t n, size_t *len)
{
	if (arg && arg[0] == '@') {
		*len = (size_t)atoi(arg + 1);
		if (*len > n)
			*len = n;
		memset(buf, 'x', *len);
		return buf;
	}
	*len = arg ? strlen(arg) : 0;
	return arg;
}

static void wait_file(const char *path)
{
	struct stat st;
	int i;

	for (i = 0; i < 600 && stat(path, &st) < 0; i++)
		usleep(100000);
}

int main(int argc, char **argv)
{
	const char *kind;
	int fd, i = 1, v6, icmp;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 2 && !strcmp(argv[1], "-t")) {
		timeout_ms = atoi(argv[2]) * 1000;
		i = 3;
	}
	if (i >= argc)
		usage();
	kind = argv[i++];
	v6 = !strcmp(kind, "udp6") || !strcmp(kind, "icmp6");
	icmp = !strncmp(kind, "icmp", 4);
	if (strcmp(kind, "udp4") && strcmp(kind, "udp6") && !icmp)
		usage();
	fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM,
		    icmp ? (v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP) : 0);
	if (fd < 0) {
		printf("socket error=%s\n", strerror(errno));
		return 2;
	}
	while (i < argc) {
		const char *s = argv[i++];
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		char a[128], buf[65536];

#define NEED(n) do { if (i + (n) > argc) usage(); } while (0)
		if (!strcmp(s, "connect")) {
			NEED(1);
			addr_arg(argv[i++], &ss, &len);
			if (connect(fd, (struct sockaddr *)&ss, len) < 0)
				printf("connect error=%s\n", strerror(errno));
			else
				printf("connect ok\n"), connected = 1;
		} else if (!strcmp(s, "disconnect")) {
			struct sockaddr un = { .sa_family = AF_UNSPEC };

			if (connect(fd, &un, sizeof(un)) < 0)
				printf("disconnect error=%s\n", strerror(errno));
			else
				printf("disconnect ok\n");
		} else if (!strcmp(s, "send")) {
			NEED(1);
			do_send(fd, NULL, 0, argv[i], strlen(argv[i]), "send");
			i++;
		} else if (!strcmp(s, "sendto")) {
			NEED(2);
			addr_arg(argv[i++], &ss, &len);
			do_send(fd, &ss, len, argv[i], strlen(argv[i]), "send");
			i++;
		} else if (!strcmp(s, "spray")) {
			int port, n, k, ok = 0, bad = 0;
			char spec[128];

			int nports;
			size_t dlen;
			const char *data;

			NEED(5);
			data = text(argv[i + 4], buf, sizeof(buf), &dlen);
			port = atoi(argv[i + 1]);
			nports = atoi(argv[i + 2]);
			n = atoi(argv[i + 3]);
			if (nports < 1)
				usage();
			for (k = 0; k < n; k++) {
				snprintf(spec, sizeof(spec), v6 ? "[%s]:%d" : "%s:%d",
					 argv[i], port + k % nports);
				addr_arg(spec, &ss, &len);
				if (sendto(fd, data, dlen, 0, (struct sockaddr *)&ss, len) < 0)
					bad++;
				else
					ok++;
				if (n > 1)
					usleep(1000);
			}
			printf("spray ok=%d error=%d\n", ok, bad);
			i += 5;
		} else if (!strcmp(s, "recv")) {
			ssize_t n = recv_one(fd, buf, sizeof(buf) - 1, &ss);

			if (n == -2) {
				printf("recv timeout\n");
			} else if (n < 0) {
				printf("recv error=%s\n", strerror(errno));
			} else {
				buf[n] = 0;
				printf("reply from %s text=%s\n", fmt_addr(&ss, a, sizeof(a)), buf);
			}
		} else if (!strcmp(s, "ping")) {
			NEED(1);
			ping(fd, v6, argv[i++]);
		} else if (!strcmp(s, "peer") || !strcmp(s, "local")) {
			int r = s[0] == 'p' ? getpeername(fd, (struct sockaddr *)&ss, &len)
					    : getsockname(fd, (struct sockaddr *)&ss, &len);

			if (r < 0)
				printf("%s error=%s\n", s, strerror(errno));
			else
				printf("%s=%s\n", s, fmt_addr(&ss, a, sizeof(a)));
		} else if (!strcmp(s, "broadcast")) {
			int one = 1;

			if (setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) < 0)
				printf("broadcast error=%s\n", strerror(errno));
		} else if (!strcmp(s, "ready")) {
			printf("ready\n");
		} else if (!strcmp(s, "wait")) {
			NEED(1);
			wait_file(argv[i++]);
		} else if (!strcmp(s, "sleep")) {
			NEED(1);
			usleep((useconds_t)atoi(argv[i++]) * 1000);
		} else {
			usage();
		}
	}
	close(fd);
	return 0;
}
