// Tiny HTTP/1.1 server for the benchmark: epoll, one SO_REUSEPORT listener
// per thread, keep-alive and pipelining, Connection: close honoured.
//   GET /            -> 200, a 13-byte body
//   GET /bytes/N     -> 200, N bytes of 'x' (streamed; N may be huge)
//   GET /whoami      -> 200, "peer=ADDR:PORT ua=USER-AGENT"
// Idle connections are held until the peer closes them, so the memory
// benchmark can park 10,000 connections on it.
//
//   httpd [-t THREADS] -p PORT [-p PORT]...    listens on 0.0.0.0 and [::]
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXPORTS 8
#define INBUF 8192
#define OUTBUF 512
#define BODYCHUNK (256 * 1024)

static int ports[MAXPORTS], nports;
static char body_chunk[BODYCHUNK];
static const char small_body[] = "hello, bench\n";

struct conn {
	int fd;
	int listener; /* 1: listening socket */
	size_t inlen;
	size_t outlen, outoff;
	uint64_t body_left; /* streamed /bytes body still to send */
	int close_after;
	char peer[64];
	char out[OUTBUF];
	char in[INBUF];
};

static int listen_on(int family, int port)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	int r;
	if (family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port),
					 .sin6_addr = IN6ADDR_ANY_INIT};
		r = bind(fd, (struct sockaddr *)&a, sizeof a);
	} else {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
		r = bind(fd, (struct sockaddr *)&a, sizeof a);
	}
	(void)zero;
	if (r < 0 || listen(fd, 4096) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void peer_str(const struct sockaddr_storage *sa, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;
		inet_ntop(AF_INET, &s->sin_addr, a, sizeof a);
		port = ntohs(s->sin_port);
		snprintf(out, len, "%s:%d", a, port);
	} else {
		const struct sockaddr_in6 *s = (const void *)sa;
		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof a);
		port = ntohs(s->sin6_port);
		snprintf(out, len, "[%s]:%d", a, port);
	}
}

static void conn_free(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

static void set_events(int ep, struct conn *c, uint32_t ev)
{
	struct epoll_event e = {.events = ev, .data.ptr = c};
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Copies the value of header NAME into out (at most len-1 bytes). */
static void header_get(const char *h, const char *end, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	out[0] = 0;
	for (const char *p = h; p < end;) {
		const char *eol = memchr(p, '\n', end - p);
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1, *e = eol;
			while (v < e && *v == ' ')
				v++;
			while (e > v && (e[-1] == '\r' || e[-1] == ' '))
				e--;
			size_t k = (size_t)(e - v) < len - 1 ? (size_t)(e - v) : len - 1;
			memcpy(out, v, k);
			out[k] = 0;
			return;
		}
		p = eol + 1;
	}
}

/* Finds the header NAME in [h, end) and returns whether its value contains VAL. */
static int header_has(const char *h, const char *end, const char *name, const char *val)
{
	size_t nl = strlen(name), vl = strlen(val);
	const char *p = h;
	while (p < end) {
		const char *eol = memchr(p, '\n', end - p);
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			for (const char *q = p + nl + 1; q + vl <= eol; q++)
				if (strncasecmp(q, val, vl) == 0)
					return 1;
		}
		p = eol + 1;
	}
	return 0;
}

/* Parses one complete request at the head of c->in, queues its response.
 * Returns 1 if a request was consumed, 0 if incomplete, -1 on garbage. */
static int handle_request(struct conn *c)
{
	char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
	if (!end)
		return c->inlen == INBUF ? -1 : 0;
	size_t reqlen = end + 4 - c->in;
	char *eol = memchr(c->in, '\n', reqlen);
	int http10 = eol && eol - c->in >= 9 && memcmp(eol - 9, "HTTP/1.0", 8) == 0;
	int close_req = header_has(eol ? eol + 1 : c->in, end, "Connection", "close");
	int keep_req = header_has(eol ? eol + 1 : c->in, end, "Connection", "keep-alive");
	c->close_after = close_req || (http10 && !keep_req);

	uint64_t n = sizeof small_body - 1;
	int stream = 0;
	char who[320];
	who[0] = 0;
	if (reqlen > 13 && memcmp(c->in, "GET /whoami ", 12) == 0) {
		char ua[200];
		header_get(eol ? eol + 1 : c->in, end, "User-Agent", ua, sizeof ua);
		int w = snprintf(who, sizeof who, "peer=%s ua=%s\n", c->peer, ua);
		n = w < (int)sizeof who ? (uint64_t)w : sizeof who - 1;
	}
	if (reqlen > 12 && memcmp(c->in, "GET /bytes/", 11) == 0) {
		n = strtoull(c->in + 11, NULL, 10);
		stream = 1;
	}
	int hl = snprintf(c->out, OUTBUF,
			  "HTTP/1.1 200 OK\r\nServer: bench-httpd\r\nContent-Type: text/plain\r\n"
			  "Content-Length: %llu\r\n%s\r\n",
			  (unsigned long long)n,
			  c->close_after ? "Connection: close\r\n" : (http10 ? "Connection: keep-alive\r\n" : ""));
	c->outlen = hl;
	c->outoff = 0;
	if (stream) {
		c->body_left = n;
	} else {
		memcpy(c->out + hl, who[0] ? who : small_body, n);
		c->outlen += n;
		c->body_left = 0;
	}
	memmove(c->in, c->in + reqlen, c->inlen - reqlen);
	c->inlen -= reqlen;
	return 1;
}

/* Writes what is pending. Returns 1 when all is written, 0 on EAGAIN, -1 on error. */
static int flush_out(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		c->outoff += w;
	}
	while (c->body_left) {
		size_t k = c->body_left < BODYCHUNK ? c->body_left : BODYCHUNK;
		ssize_t w = send(c->fd, body_chunk, k, MSG_NOSIGNAL);
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		c->body_left -= w;
	}
	return 1;
}

/* Serves everything that can be served now. Returns -1 to close. */
static int serve(int ep, struct conn *c)
{
	for (;;) {
		int f = flush_out(c);
		if (f < 0)
			return -1;
		if (f == 0) {
			set_events(ep, c, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
			return 0;
		}
		if (c->close_after)
			return -1;
		c->outlen = c->outoff = 0;
		int h = handle_request(c);
		if (h < 0)
			return -1;
		if (h == 0)
			break;
	}
	set_events(ep, c, EPOLLIN | EPOLLRDHUP);
	return 0;
}

static void *worker(void *arg)
{
	(void)arg;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	for (int i = 0; i < nports; i++) {
		int fams[2] = {AF_INET, AF_INET6};
		for (int k = 0; k < 2; k++) {
			int fd = listen_on(fams[k], ports[i]);
			if (fd < 0) {
				if (k == 1)
					continue; /* no IPv6 in this namespace: fine */
				perror("httpd: listen");
				exit(1);
			}
			struct conn *l = calloc(1, sizeof *l);
			l->fd = fd;
			l->listener = 1;
			struct epoll_event e = {.events = EPOLLIN, .data.ptr = l};
			epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
		}
	}
	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll_wait");
			exit(1);
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->listener) {
				for (int k = 0; k < 64; k++) {
					struct sockaddr_storage sa;
					socklen_t sl = sizeof sa;
					int fd = accept4(c->fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (fd < 0)
						break;
					int one = 1;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					struct conn *nc = malloc(sizeof *nc);
					if (!nc) {
						close(fd);
						continue;
					}
					nc->fd = fd;
					nc->listener = 0;
					nc->inlen = nc->outlen = nc->outoff = 0;
					nc->body_left = 0;
					nc->close_after = 0;
					peer_str(&sa, nc->peer, sizeof nc->peer);
					struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = nc};
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
				}
				continue;
			}
			int dead = 0;
			if (evs[i].events & EPOLLIN) {
				for (;;) {
					if (c->inlen == INBUF)
						break;
					ssize_t r = recv(c->fd, c->in + c->inlen, INBUF - c->inlen, 0);
					if (r == 0) {
						dead = 1;
						break;
					}
					if (r < 0) {
						if (errno != EAGAIN)
							dead = 1;
						break;
					}
					c->inlen += r;
				}
			}
			if (!dead && c->outoff == c->outlen && !c->body_left) {
				/* nothing pending: parse what came */
				c->outlen = c->outoff = 0;
				int h = handle_request(c);
				if (h < 0)
					dead = 1;
				else if (h > 0 && serve(ep, c) < 0)
					dead = 1;
			} else if (!dead && (evs[i].events & EPOLLOUT)) {
				if (serve(ep, c) < 0)
					dead = 1;
			}
			if (!dead && (evs[i].events & (EPOLLERR | EPOLLHUP)))
				dead = 1;
			if (!dead && (evs[i].events & EPOLLRDHUP) && c->inlen == 0 &&
			    c->outoff == c->outlen && !c->body_left)
				dead = 1;
			if (dead)
				conn_free(ep, c);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = 2, opt;
	while ((opt = getopt(argc, argv, "t:p:")) != -1) {
		if (opt == 't')
			threads = atoi(optarg);
		else if (opt == 'p' && nports < MAXPORTS)
			ports[nports++] = atoi(optarg);
		else {
			fprintf(stderr, "usage: httpd [-t THREADS] -p PORT...\n");
			return 2;
		}
	}
	if (!nports || threads < 1 || threads > 64) {
		fprintf(stderr, "usage: httpd [-t THREADS] -p PORT...\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	memset(body_chunk, 'x', sizeof body_chunk);
	pthread_t t[64];
	for (int i = 1; i < threads; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	fprintf(stderr, "httpd: listening\n");
	worker(NULL);
	return 0;
}
