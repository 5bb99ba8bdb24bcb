/* minrelay: the smallest TCP relay the bench can put in the traffic path,
 * as an anchor.  It accepts on LISTEN and relays each connection to DEST
 * with splice(2) (or read/write with --copy), nothing else: no BPF, no
 * tagging, no log.  Its ratio to a direct connection is what two extra
 * TCP legs and a user-space relay cost on this kernel, whatever the
 * daemon does; the daemon's ratio is to be read beside it.
 *
 *   minrelay [options] LISTEN DEST [LISTEN DEST ...]   (ADDR:PORT, IPv4)
 *     --threads N      N threads, each with its own epoll loop and its own
 *                      SO_REUSEPORT listener per LISTEN (default 1)
 *     --pipe-size B    F_SETPIPE_SZ of each direction's pipe (default 65536);
 *                      with --copy, the size of each direction's buffer
 *     --sndbuf B       SO_SNDBUF of both sockets (default 0: autotuned)
 *     --rcvbuf B       SO_RCVBUF of both sockets (default 0: autotuned)
 *     --more           SPLICE_F_MORE / MSG_MORE on writes while the read
 *                      that filled them was full (more is on its way)
 *     --copy           read/write through a buffer instead of splice
 *
 * Prints "ready" once every listener is bound.  Every wakeup moves both
 * directions of the connection until each would block (edge-triggered). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PAIRS 8

static struct sockaddr_in lis_addr[MAX_PAIRS], dst_addr[MAX_PAIRS];
static int npairs, nthreads = 1, pipe_size = 65536, sndbuf, rcvbuf, more_flag, copy_mode;

struct conn;
struct end {                   /* epoll's pointer: one socket of a connection */
	struct conn *c;
	int fd;
};
struct dir {                   /* from end[i] to end[1 - i] */
	int pipe[2];
	size_t held;               /* bytes in the pipe (or buffer) */
	size_t off;                /* --copy: first unsent byte */
	char *buf;                 /* --copy */
	int eof, shut, full;       /* full: the last read filled its length */
};
struct conn {
	struct end end[2];         /* 0: client, 1: server */
	struct dir dir[2];         /* 0: up (client -> server), 1: down */
	int connecting;
};
struct lis {                   /* epoll's pointer for a listener: end.c == NULL */
	struct end end;
	int pair;
};

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int parse_addr(const char *s, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((unsigned short)atoi(colon + 1));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static void bufs(int fd)
{
	if (sndbuf)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
}

static void conn_free(int ep, struct conn *c)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (c->end[i].fd >= 0) {
			epoll_ctl(ep, EPOLL_CTL_DEL, c->end[i].fd, NULL);
			close(c->end[i].fd);
		}
		if (c->dir[i].pipe[0] >= 0) {
			close(c->dir[i].pipe[0]);
			close(c->dir[i].pipe[1]);
		}
		free(c->dir[i].buf);
	}
	free(c);
}

/* Writes what direction i holds.  1: progress, 0: nothing moved (empty or
 * `to` full), -1: failed. */
static int flush(struct conn *c, int i)
{
	struct dir *d = &c->dir[i];
	int to = c->end[1 - i].fd, moved = 0;
	ssize_t n;

	while (d->held) {
		if (copy_mode)
			n = send(to, d->buf + d->off, d->held,
				 MSG_DONTWAIT | MSG_NOSIGNAL | (more_flag && d->full ? MSG_MORE : 0));
		else
			n = splice(d->pipe[0], NULL, to, NULL, d->held, SPLICE_F_MOVE | SPLICE_F_NONBLOCK |
				   (more_flag && d->full ? SPLICE_F_MORE : 0));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return moved;
			return -1;
		}
		d->held -= (size_t)n;
		d->off = d->held ? d->off + (size_t)n : 0;
		moved = 1;
	}
	if (d->eof && !d->shut) {
		shutdown(to, SHUT_WR);
		d->shut = 1;
	}
	return moved;
}

/* Reads into direction i while it has room.  1: progress, 0: nothing
 * moved (would block, or no room), -1: failed. */
static int fill(struct conn *c, int i)
{
	struct dir *d = &c->dir[i];
	int from = c->end[i].fd;
	size_t room = (size_t)pipe_size - d->held;
	ssize_t n;

	if (d->eof || !room || (copy_mode && d->held))
		return 0;
	if (copy_mode)
		n = recv(from, d->buf, (size_t)pipe_size, MSG_DONTWAIT);
	else
		n = splice(from, NULL, d->pipe[1], NULL, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0) {
		d->eof = 1;
		return 1;
	}
	d->held += (size_t)n;
	d->full = (size_t)n == (copy_mode ? (size_t)pipe_size : room);
	return 1;
}

/* Both directions until neither moves: with edge-triggered events, what
 * stops here is a read or a write that would block, and its edge wakes
 * the connection again. */
static void pump(int ep, struct conn *c)
{
	int progress, i, r;

	do {
		progress = 0;
		for (i = 0; i < 2; i++) {
			if ((r = flush(c, i)) < 0)
				goto fail;
			progress |= r;
			if ((r = fill(c, i)) < 0)
				goto fail;
			progress |= r;
		}
	} while (progress);
	if (c->dir[0].shut && c->dir[1].shut)
		conn_free(ep, c);
	return;
fail:
	conn_free(ep, c);
}

static void accept_all(int ep, struct lis *l)
{
	for (;;) {
		int fd = accept4(l->end.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), i;
		struct conn *c;

		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				perror("minrelay: accept");
				return;
			}
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c)
			die("calloc");
		c->end[0].c = c->end[1].c = c;
		c->end[0].fd = fd;
		c->end[1].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		c->dir[0].pipe[0] = c->dir[0].pipe[1] = c->dir[1].pipe[0] = c->dir[1].pipe[1] = -1;
		for (i = 0; i < 2; i++) {
			if (copy_mode) {
				c->dir[i].buf = malloc((size_t)pipe_size);
				if (!c->dir[i].buf)
					die("malloc");
			} else if (pipe2(c->dir[i].pipe, O_NONBLOCK | O_CLOEXEC) < 0 ||
				   fcntl(c->dir[i].pipe[1], F_SETPIPE_SZ, pipe_size) < 0) {
				perror("minrelay: pipe");
				conn_free(ep, c);
				goto next;
			}
		}
		if (c->end[1].fd < 0) {
			perror("minrelay: socket");
			conn_free(ep, c);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(c->end[1].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		bufs(fd);
		bufs(c->end[1].fd);
		if (connect(c->end[1].fd, (struct sockaddr *)&dst_addr[l->pair], sizeof(dst_addr[0])) < 0 &&
		    errno != EINPROGRESS) {
			conn_free(ep, c);
			continue;
		}
		c->connecting = 1;
		for (i = 0; i < 2; i++) {
			struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
						  .data.ptr = &c->end[i] };

			if (epoll_ctl(ep, EPOLL_CTL_ADD, c->end[i].fd, &ev) < 0)
				die("epoll_ctl");
		}
next:;
	}
}

/* One thread's listeners (one per LISTEN, SO_REUSEPORT) and epoll set,
 * made before any thread runs: "ready" means every one is bound. */
static int make_loop(void)
{
	struct lis *lis = calloc((size_t)npairs, sizeof(*lis));
	int ep = epoll_create1(EPOLL_CLOEXEC), p, one = 1;

	if (ep < 0 || !lis)
		die("epoll_create1");
	for (p = 0; p < npairs; p++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = &lis[p].end };

		if (fd < 0)
			die("socket");
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		bufs(fd);         /* accepted sockets inherit it, window scale included */
		if (bind(fd, (struct sockaddr *)&lis_addr[p], sizeof(lis_addr[p])) < 0 ||
		    listen(fd, 4096) < 0)
			die("minrelay: bind/listen");
		lis[p].end.fd = fd;
		lis[p].pair = p;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			die("epoll_ctl");
	}
	return ep;
}

static void *loop(void *arg)
{
	struct epoll_event evs[64];
	int ep = (int)(long)arg;

	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1), i, j;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (i = 0; i < n; i++) {
			struct end *e = evs[i].data.ptr;
			struct conn *c;

			if (!e)
				continue;           /* its connection is gone */
			c = e->c;
			if (!c) {
				accept_all(ep, (struct lis *)e);
				continue;
			}
			if (c->connecting) {
				int err = 0;
				socklen_t len = sizeof(err);

				if (e != &c->end[1])
					continue;   /* the client's bytes wait for the server */
				getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &len);
				if (!err && !(evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
					continue;
				if (!err)
					c->connecting = 0;
			}
			/* c may be freed below: later events of this batch naming
			 * it go (pump moves both directions anyway) */
			for (j = i + 1; j < n; j++)
				if (evs[j].data.ptr && ((struct end *)evs[j].data.ptr)->c == c)
					evs[j].data.ptr = NULL;
			if (c->connecting)
				conn_free(ep, c);   /* connect failed */
			else
				pump(ep, c);
		}
	}
	return NULL;
}

static long number(const char *s)
{
	char *end;
	long v = strtol(s, &end, 0);

	if (*s == 0 || *end || v < 0) {
		fprintf(stderr, "minrelay: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	pthread_t t;
	int i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--more"))
			more_flag = 1;
		else if (!strcmp(argv[i], "--copy"))
			copy_mode = 1;
		else if (i + 1 < argc && !strcmp(argv[i], "--threads"))
			nthreads = (int)number(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--pipe-size"))
			pipe_size = (int)number(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--sndbuf"))
			sndbuf = (int)number(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--rcvbuf"))
			rcvbuf = (int)number(argv[++i]);
		else {
			fprintf(stderr, "minrelay: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	for (; i + 1 < argc && npairs < MAX_PAIRS; i += 2, npairs++)
		if (parse_addr(argv[i], &lis_addr[npairs]) < 0 || parse_addr(argv[i + 1], &dst_addr[npairs]) < 0) {
			fprintf(stderr, "minrelay: bad address pair %s %s (ADDR:PORT)\n", argv[i], argv[i + 1]);
			return 2;
		}
	if (!npairs || i != argc || nthreads < 1 || pipe_size < 4096) {
		fprintf(stderr, "usage: minrelay [--threads N] [--pipe-size B] [--sndbuf B] [--rcvbuf B] "
			"[--more] [--copy] LISTEN DEST [LISTEN DEST ...]\n");
		return 2;
	}
	int eps[nthreads];

	for (i = 0; i < nthreads; i++)
		eps[i] = make_loop();
	for (i = 1; i < nthreads; i++)
		if (pthread_create(&t, NULL, loop, (void *)(long)eps[i]))
			die("pthread_create");
	printf("ready\n");
	fflush(stdout);
	loop((void *)(long)eps[0]);
	return 0;
}
