#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "addr.h"
#include "daemon.h"
#include "log.h"
#include "privhelper.h"
#include "sockdiag.h"
#include "sproxy.h"
#include "sproxy.skel.h"
#include "udp_failopen.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/* The descriptor number of socket inode `ino` in process `pid`, or -1. */
static int find_fd(uint32_t pid, uint32_t ino)
{
	char dir[64], path[320], link[64], want[40];
	struct dirent *e;
	DIR *d;
	int fd = -1;

	snprintf(dir, sizeof(dir), "/proc/%u/fd", pid);
	snprintf(want, sizeof(want), "socket:[%u]", ino);
	d = opendir(dir);
	if (!d)
		return -1;
	while (fd < 0 && (e = readdir(d))) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (strcmp(link, want) == 0)
			fd = atoi(e->d_name);
	}
	closedir(d);
	return fd;
}

/* A copy of the application's socket, checked by cookie; -errno. */
static int take_socket(const struct sproxy_flow *rec, uint32_t ino)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	int pidfd, fd, theirs;

	/* After the drop: the helper, with CAP_SYS_PTRACE, hands it over. */
	fd = privhelper_take_socket(rec->proc.tgid, ino);
	if (fd >= 0 || errno != ENOSYS) {
		if (fd < 0)
			return -errno;
		goto check;
	}
	theirs = find_fd(rec->proc.tgid, ino);
	if (theirs < 0)
		return -ENOENT;
	pidfd = (int)syscall(SYS_pidfd_open, (pid_t)rec->proc.tgid, 0);
	if (pidfd < 0)
		return -errno;
	fd = (int)syscall(SYS_pidfd_getfd, pidfd, theirs, 0);
	if (fd < 0)
		fd = -errno;
	close(pidfd);
check:
	if (fd >= 0 && (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) < 0 ||
			cookie != rec->cookie)) {
		close(fd);
		fd = -ESTALE;
	}
	return fd;
}

/* Connects the socket (our copy of it) to the flow's destination.  It is
 * disconnected first: that drops its loopback source address and port,
 * which could not reach the peer. */
static int repoint(int fd, const struct sproxy_flow *rec)
{
	struct sockaddr_storage self, dst;
	struct sockaddr unspec = { .sa_family = AF_UNSPEC };
	socklen_t len = sizeof(self);

	if (getsockname(fd, (struct sockaddr *)&self, &len) < 0)
		return -errno;
	len = addr_from_sproxy(&rec->dst, &dst);
	if (self.ss_family == AF_INET6 && dst.ss_family == AF_INET) {
		struct sockaddr_in6 *m = (void *)&self;
		const struct sockaddr_in *a = (const void *)&dst;
		uint16_t port = a->sin_port;
		struct in_addr ip = a->sin_addr;

		memset(m, 0, sizeof(*m));
		m->sin6_family = AF_INET6;
		m->sin6_port = port;
		m->sin6_addr.s6_addr[10] = 0xff;
		m->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&m->sin6_addr.s6_addr[12], &ip, 4);
		dst = self;
		len = sizeof(*m);
	}
	if (connect(fd, &unspec, sizeof(unspec)) < 0 ||
	    connect(fd, (struct sockaddr *)&dst, len) < 0)
		return -errno;
	return 0;
}

void udp_failopen(struct daemon *d)
{
	struct udp_sock_info *socks = NULL;
	size_t n_socks = 0, done = 0, failed = 0;
	char a[ADDR_STRLEN], comm[SPROXY_COMM_LEN + 1];
	int fam, rc;

	if (!d->bpf.skel)
		return;
	rc = sockdiag_udp_all(&socks, &n_socks);
	if (rc < 0) {
		log_warn("connected UDP sockets keep pointing at the pool: sock_diag: %s; "
			 "their applications must reconnect", strerror(-rc));
		return;
	}
	for (fam = 0; fam < 2; fam++) {
		int mfd = bpf_map__fd(fam ? d->bpf.skel->maps.ports6 : d->bpf.skel->maps.ports4);
		uint32_t key, next;
		void *prev = NULL;

		while (bpf_map_get_next_key(mfd, prev, &next) == 0) {
			const struct udp_sock_info *s;
			struct sproxy_flow rec;
			struct sockaddr_storage dst;
			int fd;

			key = next;
			prev = &key;
			if (bpf_map_lookup_elem(mfd, &key, &rec) < 0 ||
			    !(rec.flags & SPROXY_FLOW_CONNECTED))
				continue;
			s = sockdiag_find(socks, n_socks, rec.cookie);
			if (!s)
				continue;      /* closed meanwhile */
			addr_from_sproxy(&rec.dst, &dst);
			fd = take_socket(&rec, s->inode);
			rc = fd < 0 ? fd : repoint(fd, &rec);
			if (fd >= 0)
				close(fd);
			if (rc == 0) {
				done++;
				continue;
			}
			failed++;
			log_warn("connected UDP socket of %s (pid %u) to %s still points at "
				 "pool port %u, which closes: %s; the application sees errors "
				 "until it reconnects",
				 log_escape(comm, sizeof(comm), rec.proc.comm, SPROXY_COMM_LEN),
				 rec.proc.tgid, addr_str((struct sockaddr *)&dst, a, sizeof(a)), key, strerror(-rc));
		}
	}
	free(socks);
	if (done || failed)
		log_info("%zu connected UDP sockets now reach their peers directly, %zu not",
			 done, failed);
}
