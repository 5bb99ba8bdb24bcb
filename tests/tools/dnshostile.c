/*
 * dnshostile: DNS-over-TCP clients that misbehave, for the integration
 * tests of the daemon's DNS server.
 *
 *   dnshostile flood [-t SEC] [-h SEC] [-r] ADDR:PORT
 *       Pipelines A queries for flood.test as fast as the socket takes
 *       them, for SEC seconds (default 5), and never reads an answer.
 *       Prints "sent BYTES", then holds the connection open for -h SEC
 *       (default 30) before it exits.  With -r it reads 100 bytes a
 *       second while it holds, and prints "closed after MS ms" when the
 *       server ends the session (exit 0) or "still open" (exit 3).
 *
 *   dnshostile hang [-t SEC] ADDR:PORT NAME
 *       Sends one TXT query for NAME, then the first 5 bytes of a second
 *       query, then shuts its write side down and waits for the server to
 *       close.  Prints "closed after MS ms" (exit 0) or "still open after
 *       SEC s" (exit 3).
 *
 *   dnshostile sessions [-t SEC] -n N ADDR:PORT
 *       Opens N connections from this one process, all held open, then
 *       asks one A query on each.  Prints "answered A closed C": how many
 *       got an answer within SEC seconds (default 5), how many were closed
 *       or reset without one.
 *
 *   dnshostile chain [-t SEC] -n N ADDR:PORT
 *       Opens N connections and, for SEC seconds (default 5), sends on
 *       each 64 KiB queries whose 2600 answer records are all named by
 *       the end of a 16000-hop chain of compression pointers, reading and
 *       dropping whatever comes back.  Prints "sent Q queries".
 *
 * Exit status: 0 done, 2 socket or connect failure, 3 see above, 64 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tool_addr.h"

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* A length-framed query: 2-byte length, header, question. */
static size_t query(uint8_t *out, uint16_t id, const char *name, uint16_t type)
{
	size_t n = 2;
	const char *p = name;

	memset(out, 0, 14);
	out[n++] = (uint8_t)(id >> 8);
	out[n++] = (uint8_t)id;
	out[n++] = 0x01;              /* RD */
	n++;
	out[n + 1] = 1;               /* QDCOUNT */
	n += 8;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		out[n++] = (uint8_t)l;
		memcpy(out + n, p, l);
		n += l;
		p += l + (dot ? 1 : 0);
	}
	out[n++] = 0;
	out[n++] = (uint8_t)(type >> 8);
	out[n++] = (uint8_t)type;
	out[n++] = 0;
	out[n++] = 1;                 /* IN */
	out[0] = (uint8_t)((n - 2) >> 8);
	out[1] = (uint8_t)(n - 2);
	return n;
}

static int dial(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (const struct sockaddr *)ss, len) < 0) {
		fprintf(stderr, "dnshostile: connect: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int flood(int fd, int secs, int hold, int trickle)
{
	static uint8_t buf[64 * 1024];
	size_t one, n = 0;
	long long end = now_ms() + secs * 1000LL, sent = 0;
	uint8_t q[300];

	one = query(q, 1, "flood.test", 1);
	while (n + one <= sizeof(buf)) {
		memcpy(buf + n, q, one);
		n += one;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while (now_ms() < end) {
		ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);

		if (w > 0) {
			sent += w;
			/* the next batch starts on a query boundary */
			size_t part = (size_t)w % one;
			if (part) {
				struct pollfd p = { .fd = fd, .events = POLLOUT };
				size_t off = 0, left = one - part;

				while (left && now_ms() < end) {
					poll(&p, 1, 100);
					w = send(fd, q + part + off, left, MSG_NOSIGNAL);
					if (w > 0) {
						off += (size_t)w;
						left -= (size_t)w;
						sent += w;
					} else if (w < 0 && errno != EAGAIN) {
						break;
					}
				}
			}
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			break;
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		poll(&p, 1, 100);
	}
	printf("sent %lld\n", sent);
	fflush(stdout);
	if (!trickle) {
		sleep((unsigned)hold);
		return 0;
	}
	/* Megabytes of answers sit in our receive queue, ahead of the FIN:
	 * the state of the connection says whether the server ended it. */
	long long t0 = now_ms();
	while (now_ms() < t0 + hold * 1000LL) {
		struct tcp_info ti;
		socklen_t tl = sizeof(ti);
		ssize_t r = recv(fd, buf, 100, 0);

		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ||
		    (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 &&
		     ti.tcpi_state != TCP_ESTABLISHED)) {
			printf("closed after %lld ms\n", now_ms() - t0);
			return 0;
		}
		usleep(1000000);
	}
	printf("still open after %d s\n", hold);
	return 3;
}

static int hang(int fd, int secs, const char *name)
{
	uint8_t q[600], buf[4096];
	size_t n = query(q, 7, name, 16);
	long long t0;

	query(q + n, 8, name, 16);
	n += 5;             /* the next query's length and 3 bytes of it */
	if (send(fd, q, n, MSG_NOSIGNAL) != (ssize_t)n) {
		fprintf(stderr, "dnshostile: send: %s\n", strerror(errno));
		return 2;
	}
	shutdown(fd, SHUT_WR);
	t0 = now_ms();
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = t0 + secs * 1000LL - now_ms();

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			printf("still open after %d s\n", secs);
			return 3;
		}
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r <= 0) {
			printf("closed after %lld ms\n", now_ms() - t0);
			return 0;
		}
	}
}

static int sessions(const struct sockaddr_storage *ss, socklen_t len, int count,
		    int secs)
{
	int *fds = calloc((size_t)count, sizeof(*fds));
	int answered = 0, closed = 0;
	uint8_t q[300], buf[4096];

	if (!fds)
		return 2;
	for (int i = 0; i < count; i++) {
		fds[i] = dial(ss, len);
		if (fds[i] < 0)
			return 2;
	}
	for (int i = 0; i < count; i++) {
		size_t n = query(q, (uint16_t)i, "session.test", 1);
		send(fds[i], q, n, MSG_NOSIGNAL);
	}
	long long end = now_ms() + secs * 1000LL;
	for (int i = 0; i < count; i++) {
		struct pollfd p = { .fd = fds[i], .events = POLLIN };
		long long left = end - now_ms();

		if (poll(&p, 1, left > 0 ? (int)left : 0) <= 0)
			continue;
		ssize_t r = recv(fds[i], buf, sizeof(buf), 0);
		if (r > 2)
			answered++;
		else
			closed++;
	}
	printf("answered %d closed %d\n", answered, closed);
	for (int i = 0; i < count; i++)
		close(fds[i]);
	free(fds);
	return 0;
}

/* One framed 64 KiB query: question chain.test A, a TXT record holding a
 * chain of pointers (each to the one before, the first to the question),
 * then records named by the chain's last link. */
static size_t chain_query(uint8_t *m)
{
	size_t k = 16000, r = 2600, n = query(m, 9, "chain.test", 1);
	uint8_t *msg = m + 2;            /* offsets below are the message's */
	size_t at = n - 2, last;

	msg[6] = (uint8_t)((1 + r) >> 8);  /* ANCOUNT */
	msg[7] = (uint8_t)(1 + r);
	uint8_t rr[] = { 0, 0, 16, 0, 1, 0, 0, 0, 0,
			 (uint8_t)((2 * k) >> 8), (uint8_t)(2 * k) };
	memcpy(msg + at, rr, sizeof(rr));
	at += sizeof(rr);
	for (size_t i = 0; i < k; i++) {
		size_t to = i ? at + 2 * i - 2 : 12;
		msg[at + 2 * i] = (uint8_t)(0xc0 | to >> 8);
		msg[at + 2 * i + 1] = (uint8_t)to;
	}
	last = at + 2 * (k - 1);
	at += 2 * k;
	for (size_t i = 0; i < r; i++) {
		uint8_t x[12] = { (uint8_t)(0xc0 | last >> 8), (uint8_t)last,
				  0, 1, 0, 1, 0, 0, 0, 0, 0, 0 };
		memcpy(msg + at, x, sizeof(x));
		at += sizeof(x);
	}
	m[0] = (uint8_t)(at >> 8);
	m[1] = (uint8_t)at;
	return at + 2;
}

static int chain(const struct sockaddr_storage *ss, socklen_t len, int count, int secs)
{
	static uint8_t q[65600], junk[65536];
	struct pollfd *p = calloc((size_t)count, sizeof(*p));
	size_t *off = calloc((size_t)count, sizeof(*off));
	size_t n = chain_query(q);
	long long end = now_ms() + secs * 1000LL, queries = 0;

	if (!p || !off)
		return 2;
	for (int i = 0; i < count; i++) {
		p[i].fd = dial(ss, len);
		if (p[i].fd < 0)
			return 2;
		fcntl(p[i].fd, F_SETFL, fcntl(p[i].fd, F_GETFL) | O_NONBLOCK);
		p[i].events = POLLIN | POLLOUT;
	}
	while (now_ms() < end) {
		if (poll(p, (nfds_t)count, 100) <= 0)
			continue;
		for (int i = 0; i < count; i++) {
			if (p[i].fd < 0)
				continue;
			if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t r = recv(p[i].fd, junk, sizeof(junk), 0);
				if (r == 0 || (r < 0 && errno != EAGAIN)) {
					close(p[i].fd);
					p[i].fd = -1;
					continue;
				}
			}
			if (p[i].revents & POLLOUT) {
				ssize_t w = send(p[i].fd, q + off[i], n - off[i], MSG_NOSIGNAL);
				if (w > 0 && (off[i] += (size_t)w) == n) {
					off[i] = 0;
					queries++;
				}
			}
		}
	}
	printf("sent %lld queries\n", queries);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: dnshostile flood [-t SEC] [-h SEC] [-r] ADDR:PORT\n"
		"       dnshostile hang [-t SEC] ADDR:PORT NAME\n"
		"       dnshostile sessions [-t SEC] -n N ADDR:PORT\n"
		"       dnshostile chain [-t SEC] -n N ADDR:PORT\n");
	return 64;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int secs = 5, hold = 30, count = 0, trickle = 0, c, fd;
	const char *mode;

	if (argc < 2)
		return usage();
	mode = argv[1];
	optind = 2;
	while ((c = getopt(argc, argv, "t:h:n:r")) != -1) {
		switch (c) {
		case 't': secs = atoi(optarg); break;
		case 'h': hold = atoi(optarg); break;
		case 'n': count = atoi(optarg); break;
		case 'r': trickle = 1; break;
		default: return usage();
		}
	}
	if (optind >= argc || parse_addr(argv[optind], &ss, &len) < 0)
		return usage();
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(mode, "chain"))
		return count > 0 ? chain(&ss, len, count, secs) : usage();
	if (!strcmp(mode, "sessions"))
		return count > 0 ? sessions(&ss, len, count, secs) : usage();
	fd = dial(&ss, len);
	if (fd < 0)
		return 2;
	if (!strcmp(mode, "flood"))
		return flood(fd, secs, hold, trickle);
	if (!strcmp(mode, "hang") && optind + 1 < argc)
		return hang(fd, secs, argv[optind + 1]);
	return usage();
}
