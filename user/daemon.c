#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <string.h>
#include <sys/socket.h>

#include "cgroup.h"
#include "daemon.h"
#include "log.h"
#include "sproxy.h"

void daemon_mark(const struct daemon *d, int fd)
{
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &d->opt->mark, sizeof(d->opt->mark)) < 0)
		log_warn("SO_MARK on a socket of ours: %s (the process check still "
			 "keeps it out of capture)", strerror(errno));
}

const char *daemon_cgroup_name(const struct daemon *d, uint64_t id)
{
	return cg_name(d->cg_mount, id);
}

/* The kernel gives the hooks the calling thread's name (dig's resolver
 * thread is "isc-net-0000"); users know the process by its main thread's.
 * Read while the process is alive, cached for a second per pid. */
void daemon_process_comm(struct sproxy_proc *p)
{
	static struct { uint32_t pid; time_t at; char comm[SPROXY_COMM_LEN]; } cache[64];
	unsigned i = p->tgid % 64;
	time_t now = time(NULL);
	char path[32], buf[SPROXY_COMM_LEN + 1];
	ssize_t n;
	int fd;

	if (p->pid == p->tgid || p->tgid == 0)
		return;
	if (cache[i].pid == p->tgid && now - cache[i].at < 1) {
		memcpy(p->comm, cache[i].comm, SPROXY_COMM_LEN);
		return;
	}
	snprintf(path, sizeof(path), "/proc/%u/comm", p->tgid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, SPROXY_COMM_LEN);
	close(fd);
	if (n <= 0)
		return;
	if (buf[n - 1] == '\n')
		n--;
	memset(p->comm, 0, SPROXY_COMM_LEN);
	memcpy(p->comm, buf, (size_t)n);
	cache[i].pid = p->tgid;
	cache[i].at = now;
	memcpy(cache[i].comm, p->comm, SPROXY_COMM_LEN);
}
