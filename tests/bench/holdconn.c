// Opens N TCP connections to ADDR:PORT, makes one HTTP/1.1 keep-alive
// request on each (so every hop of a proxy chain is established and has
// carried data), then holds them all idle until SIGTERM/SIGINT or the hold
// time runs out. At most INFLIGHT connections are being set up at once.
//
//   holdconn -a ADDR -p PORT -n N [-c INFLIGHT] [-t SETUP_TIMEOUT] [-H HOLD]
//
// Prints "ready OK FAILED SECONDS" once every connection has either
// answered or failed, then "done OPEN" on exit (OPEN = still open then).
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { S_CONNECTING, S_READING, S_IDLE, S_DEAD };

struct conn {
	int fd;
	int state;
	int got;
	char buf[512];
};

static volatile sig_atomic_t stop;
static void on_sig(int s) { (void)s; stop = 1; }

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char req[] = "GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: holdconn\r\n\r\n";

/* 1: a full response is in c->buf */
static int response_done(struct conn *c)
{
	c->buf[c->got] = 0;
	char *end = strstr(c->buf, "\r\n\r\n");
	if (!end)
		return 0;
	char *cl = strcasestr(c->buf, "Content-Length:");
	long n = cl ? strtol(cl + 15, NULL, 10) : 0;
	return (end + 4 - c->buf) + n <= c->got;
}

int main(int argc, char **argv)
{
	const char *addr = NULL;
	int port = 0, n = 0, inflight = 256, opt;
	double setup_timeout = 60, hold = 600;
	while ((opt = getopt(argc, argv, "a:p:n:c:t:H:")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'n': n = atoi(optarg); break;
		case 'c': inflight = atoi(optarg); break;
		case 't': setup_timeout = atof(optarg); break;
		case 'H': hold = atof(optarg); break;
		default: goto usage;
		}
	}
	if (!addr || port <= 0 || n <= 0 || inflight <= 0)
		goto usage;
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	struct sockaddr_in *s4 = (void *)&ss;
	struct sockaddr_in6 *s6 = (void *)&ss;
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sl = sizeof *s4;
	} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		sl = sizeof *s6;
	} else
		goto usage;

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < (rlim_t)n + 64) {
			fprintf(stderr, "holdconn: fd limit %llu too low for %d connections\n",
				(unsigned long long)rl.rlim_cur, n);
			return 1;
		}
	}
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	signal(SIGPIPE, SIG_IGN);

	struct conn *cs = calloc(n, sizeof *cs);
	int ep = epoll_create1(0);
	int started = 0, pending = 0, ok = 0, failed = 0, open_now = 0;
	double t0 = now();
	struct epoll_event evs[256];
	while (!stop && ok + failed < n) {
		while (started < n && pending < inflight) {
			struct conn *c = &cs[started++];
			c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
			if (c->fd < 0) {
				c->state = S_DEAD;
				failed++;
				continue;
			}
			if (connect(c->fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
				close(c->fd);
				c->state = S_DEAD;
				failed++;
				continue;
			}
			c->state = S_CONNECTING;
			struct epoll_event e = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = c};
			epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
			pending++;
		}
		if (now() - t0 > setup_timeout)
			break;
		int k = epoll_wait(ep, evs, 256, 200);
		for (int i = 0; i < k; i++) {
			struct conn *c = evs[i].data.ptr;
			uint32_t ev = evs[i].events;
			if (c->state == S_CONNECTING && (ev & EPOLLOUT)) {
				int err = 0;
				socklen_t el = sizeof err;
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err || send(c->fd, req, sizeof req - 1, MSG_NOSIGNAL) != sizeof req - 1)
					goto fail;
				c->state = S_READING;
				struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
				continue;
			}
			if (c->state == S_READING && (ev & EPOLLIN)) {
				ssize_t r = recv(c->fd, c->buf + c->got, sizeof c->buf - 1 - c->got, 0);
				if (r <= 0 && !(r < 0 && errno == EAGAIN))
					goto fail;
				if (r > 0)
					c->got += r;
				if (response_done(c)) {
					c->state = S_IDLE;
					/* keep watching for the peer closing it */
					struct epoll_event e = {.events = EPOLLRDHUP, .data.ptr = c};
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
					ok++;
					open_now++;
					pending--;
				} else if (c->got >= (int)sizeof c->buf - 1)
					goto fail;
				continue;
			}
			if (c->state == S_IDLE) {
				open_now--;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				c->state = S_DEAD;
				continue;
			}
			if (c->state == S_DEAD)
				continue;
			if (!(ev & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)))
				continue;
		fail:
			epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			close(c->fd);
			c->state = S_DEAD;
			failed++;
			pending--;
		}
	}
	/* whatever is still being set up counts as failed */
	for (int i = 0; i < started; i++)
		if (cs[i].state == S_CONNECTING || cs[i].state == S_READING) {
			epoll_ctl(ep, EPOLL_CTL_DEL, cs[i].fd, NULL);
			close(cs[i].fd);
			cs[i].state = S_DEAD;
			failed++;
		}
	failed += n - started;
	printf("ready %d %d %.3f\n", ok, failed, now() - t0);
	fflush(stdout);
	double th = now();
	while (!stop && now() - th < hold) {
		int k = epoll_wait(ep, evs, 256, 200);
		for (int i = 0; i < k; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->state == S_IDLE) {
				open_now--;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				c->state = S_DEAD;
			}
		}
	}
	printf("done %d\n", open_now);
	fflush(stdout);
	return ok == n ? 0 : 1;
usage:
	fprintf(stderr, "usage: holdconn -a ADDR -p PORT -n N [-c INFLIGHT] [-t SETUP_TIMEOUT] [-H HOLD]\n");
	return 2;
}
