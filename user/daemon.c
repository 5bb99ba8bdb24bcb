#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "cgroup.h"
#include "daemon.h"
#include "log.h"

void daemon_mark(const struct daemon *d, int fd)
{
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &d->opt->mark, sizeof(d->opt->mark)) < 0)
		log_warn("SO_MARK on a socket of ours: %s (the process check still "
			 "keeps it out of capture)", strerror(errno));
}

const char *daemon_cgroup_name(const struct daemon *d, uint64_t id)
{
	return cg_name(d->cg_mount, d->target, id);
}
