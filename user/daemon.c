#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <string.h>
#include <sys/socket.h>

#include "cgroup.h"
#include "daemon.h"
#include "dnsserver.h"
#include "log.h"
#include "relayloop.h"
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

/* The DNS server as the options say, for either mode.  0, or -1 with err. */
int daemon_dns_new(struct daemon *d, char *err, size_t errlen)
{
	const struct options *o = d->opt;
	struct dns_range byp[256];
	struct dns_config dc = {
		.fakeip_enabled = !o->disable_fakeip,
		.v4_range = o->fakeip_range[0],
		.v6_range = o->fakeip_range[1],
		.ttl = o->fakeip_ttl,
		.exclude = (const char **)o->fakeip_exclude,
		.n_exclude = (size_t)o->n_fakeip_exclude,
		.resolvers = o->resolvers,
		.n_resolvers = (size_t)o->n_resolvers,
		.store_path = o->fakeip_store,
		.mark = o->mark,
		.verbose = o->verbose,
		.bypass = byp,
		.n_bypass = (size_t)o->n_bypass,
		.allow_private_answers = o->allow_private_answers,
		.max_names_per_process = o->fakeip_per_process,
	};

	for (int i = 0; i < o->n_bypass; i++) {
		memcpy(byp[i].addr, o->bypass[i].key.ip, 16);
		byp[i].prefixlen = o->bypass[i].key.prefixlen;
	}
	d->dns = dns_server_new(d->base, &dc, err, errlen);
	return d->dns ? 0 : -1;
}

void daemon_loops_start(struct daemon *d)
{
	int n = d->opt->threads ? (int)d->opt->threads : relay_loops_default();
	char err[256];

	d->limits.loops = relay_loops_new(d->base, n, err, sizeof(err));
	if (!d->limits.loops && err[0])
		log_warn("%s: every connection is relayed on the main loop", err);
	else if (d->limits.loops)
		log_debug("relaying on %d event loops", n);
}

/* After every connection has ended. */
void daemon_loops_stop(struct daemon *d)
{
	relay_loops_free(d->limits.loops);
	d->limits.loops = NULL;
}
