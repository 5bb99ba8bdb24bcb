/* --to: the other proxy's cgroup, the BPF side's settings, the hook on
 * that cgroup, and the log line of each connection handed off. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/stat.h>

#include "addr.h"
#include "cgroup.h"
#include "cli.h"
#include "daemon.h"
#include "handoff.h"
#include "log.h"
#include "sproxy.skel.h"

/* One line of /proc/net/tcp[6]: a listener on addr (16 bytes, the
 * kernel's order) and port (host order)?  0 otherwise. */
static unsigned long parse_listen(const char *line, int v6, uint8_t addr[16],
				  unsigned *port)
{
	char hex[33];
	unsigned st;
	unsigned long inode;
	uint32_t w[4];

	if (sscanf(line, " %*u: %32[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*s %*s %lu",
		   hex, port, &st, &inode) != 4 || st != 0x0A)    /* TCP_LISTEN */
		return 0;
	if (strlen(hex) != (v6 ? 32u : 8u))
		return 0;
	/* Each 32-bit word printed as the host reads it: read back the same
	 * way, its bytes are in network order again. */
	for (int i = 0; i < (v6 ? 4 : 1); i++) {
		char part[9];

		memcpy(part, hex + 8 * i, 8);
		part[8] = 0;
		w[i] = (uint32_t)strtoul(part, NULL, 16);
	}
	memset(addr, 0, 16);
	if (v6) {
		memcpy(addr, w, 16);
	} else {
		addr[10] = addr[11] = 0xff;     /* IPv4-mapped, as struct sproxy_addr */
		memcpy(addr + 12, w, 4);
	}
	return inode;
}

unsigned long handoff_listener_inode(const struct sockaddr *sa, const char *tcp,
				     const char *tcp6)
{
	static const uint8_t any[16], any4[16] = { [10] = 0xff, [11] = 0xff };
	struct sproxy_addr want;
	unsigned long found = 0;
	int is4;

	addr_to_sproxy(sa, &want);
	is4 = memcmp(want.ip, any4, 12) == 0;
	for (int v6 = 0; v6 < 2 && !found; v6++) {
		FILE *fp = fopen(v6 ? tcp6 : tcp, "re");
		char line[512];

		if (!fp)
			continue;
		while (!found && fgets(line, sizeof(line), fp)) {
			uint8_t a[16];
			unsigned port;
			unsigned long ino = parse_listen(line, v6, a, &port);

			if (!ino || port != addr_port(sa))
				continue;
			if (memcmp(a, want.ip, 16) == 0 ||
			    (is4 && memcmp(a, any4, 16) == 0) ||   /* 0.0.0.0 */
			    memcmp(a, any, 16) == 0)                /* [::] */
				found = ino;
		}
		fclose(fp);
	}
	return found;
}

/* The process holding socket inode ino: the first found in /proc. */
static pid_t inode_owner(unsigned long ino)
{
	char want[64], path[300], link[64];
	DIR *proc = opendir("/proc"), *fds;
	struct dirent *p, *f;
	pid_t pid = 0;

	if (!proc)
		return 0;
	snprintf(want, sizeof(want), "socket:[%lu]", ino);
	while (!pid && (p = readdir(proc))) {
		if (!isdigit((unsigned char)p->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", p->d_name);
		fds = opendir(path);
		if (!fds)
			continue;
		while ((f = readdir(fds))) {
			ssize_t n;

			n = readlinkat(dirfd(fds), f->d_name, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = 0;
			if (strcmp(link, want) == 0) {
				pid = (pid_t)atoi(p->d_name);
				break;
			}
		}
		closedir(fds);
	}
	closedir(proc);
	return pid;
}

/* pid's cgroup v2 path below the mount ("/" for the root).  0 or -1. */
static int pid_cgroup(pid_t pid, char *out, size_t len)
{
	char path[64], line[PATH_MAX + 8];
	FILE *fp;
	int rc = -1;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp)) {
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = 0;
			if (strlen(line + 3) >= len)
				break;
			memcpy(out, line + 3, strlen(line + 3) + 1);
			rc = 0;
			break;
		}
	}
	fclose(fp);
	return rc;
}

static const char *pid_comm(pid_t pid, char *buf, size_t len)
{
	char path[64];
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	snprintf(buf, len, "?");
	fp = fopen(path, "re");
	if (fp) {
		if (fgets(buf, (int)len, fp))
			buf[strcspn(buf, "\n")] = 0;
		fclose(fp);
	}
	return buf;
}

/* Where the proxy listening on --to runs: its cgroup, absolute, in h->cg.
 * 0, or an exit status (logged). */
static int find_proxy(struct handoff *h, const struct options *o, const char *cg_mount,
		      const char *to)
{
	char rel[PATH_MAX], comm[32];
	unsigned long ino;

	ino = handoff_listener_inode((const struct sockaddr *)&o->handoff_to,
				     "/proc/net/tcp", "/proc/net/tcp6");
	if (!ino) {
		log_err("--to %s: nothing listens there (TCP, in this network namespace): "
			"start the proxy first, or name its cgroup with --proxy-cgroup", to);
		return EXIT_USAGE;
	}
	h->pid = inode_owner(ino);
	if (!h->pid || pid_cgroup(h->pid, rel, sizeof(rel)) < 0) {
		log_err("--to %s: the listening socket (inode %lu) belongs to no process "
			"this one can see; name the proxy's cgroup with --proxy-cgroup", to, ino);
		return EXIT_USAGE;
	}
	pid_comm(h->pid, comm, sizeof(comm));
	if (strcmp(rel, "/") == 0) {
		log_err("--to %s: the proxy listening there (pid %d, %s) runs in the cgroup "
			"v2 root; its getsockopt hook would have to go on the root, that is on "
			"every process of this machine: refused, nothing attached.  Move it "
			"into a cgroup of its own first: 'mkdir %s/%s; echo %d > %s/%s/cgroup.procs' "
			"(or start it with 'systemd-run --scope ...'), then start sproxy-bpf again",
			to, (int)h->pid, comm, cg_mount, comm, (int)h->pid, cg_mount, comm);
		return EXIT_USAGE;
	}
	snprintf(h->cg, sizeof(h->cg), "%s%s", cg_mount, rel);
	log_info("--to %s: the proxy there is pid %d (%s), in cgroup %s", to, (int)h->pid,
		 comm, rel);
	return 0;
}

static void set_address(struct handoff *h, const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;

		h->ip4 = s4->sin_addr.s_addr;
		h->port4 = s4->sin_port;
	} else {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		memcpy(h->ip6, &s6->sin6_addr, 16);
		h->port6 = s6->sin6_port;
	}
}

int handoff_prepare(struct handoff *h, struct options *o, const char *cg_mount,
		    const char *target)
{
	char to[ADDR_STRLEN], err[512], realmount[PATH_MAX];
	struct stat st;
	int rc;

	memset(h, 0, sizeof(*h));
	if (!o->handoff_to.ss_family)
		return 0;
	h->on = 1;
	addr_str((const struct sockaddr *)&o->handoff_to, to, sizeof(to));
	if (o->proxy_cgroup) {
		if (cg_resolve(cg_mount, o->proxy_cgroup, 1, h->cg, sizeof(h->cg), err,
			       sizeof(err)) < 0) {
			log_err("--proxy-cgroup: %s", err);
			return EXIT_USAGE;
		}
		if (!realpath(cg_mount, realmount))
			snprintf(realmount, sizeof(realmount), "%s", cg_mount);
		if (strcmp(h->cg, realmount) == 0) {
			log_err("--proxy-cgroup %s is the cgroup v2 root; the getsockopt hook "
				"there would run for every process of this machine: refused, "
				"nothing attached.  Move the proxy into a cgroup of its own "
				"('mkdir %s/redsocks; echo PID > %s/redsocks/cgroup.procs', or "
				"'systemd-run --scope ...') and name that one", o->proxy_cgroup,
				cg_mount, cg_mount);
			return EXIT_USAGE;
		}
	} else if ((rc = find_proxy(h, o, cg_mount, to)) != 0) {
		return rc;
	}
	if (strcmp(h->cg, target) == 0) {
		log_err("--to %s: the proxy runs in %s, the captured cgroup itself: its own "
			"connections out could not be told from the applications' and would "
			"come back to it.  Move it into a cgroup of its own (a child of %s "
			"will do)", to, target, target);
		return EXIT_USAGE;
	}
	if (stat(h->cg, &st) < 0) {
		log_err("--to %s: cgroup %s: %s", to, h->cg, strerror(errno));
		return EXIT_USAGE;
	}
	h->cgid = (uint64_t)st.st_ino;
	set_address(h, &o->handoff_to);
	/* The other proxy's own address is never redirected (loopback is
	 * bypassed already). */
	if (!addr_is_loopback((const struct sockaddr *)&o->handoff_to) && o->n_bypass < 256) {
		struct bypass_entry *e = &o->bypass[o->n_bypass++];
		struct sproxy_addr a;

		addr_to_sproxy((const struct sockaddr *)&o->handoff_to, &a);
		memcpy(e->key.ip, a.ip, sizeof(e->key.ip));
		e->key.prefixlen = 128;
		e->port = htons(addr_port((const struct sockaddr *)&o->handoff_to));
	}
	/* It gets the destination as an address: a fake one means nothing to
	 * it.  So DNS answers are real ones. */
	if (!o->disable_fakeip)
		log_info("--to: FakeIP is off (DNS answers with real addresses, which "
			 "the proxy at %s can reach)", to);
	o->disable_fakeip = 1;
	return 0;
}

void handoff_rodata(struct sproxy_bpf *s, const struct handoff *h)
{
	if (!h || !h->on)
		return;
	s->rodata->handoff4_ip = h->ip4;
	s->rodata->handoff4_port = h->port4;
	for (int i = 0; i < 4; i++)
		s->rodata->handoff6_ip[i] = h->ip6[i];
	s->rodata->handoff6_port = h->port6;
	s->rodata->handoff_cgid = h->cgid;
}

int handoff_attach(const struct handoff *h, struct loader *l, const char *target,
		   const char *proxy_cg, char *err, size_t errlen)
{
	int sockops;

	if (!h->on)
		return 0;
	/* Programs of a cgroup above run for it too: sockops once is enough
	 * (the getsockopt hook answers once either way). */
	sockops = !cg_within(h->cg, target) && !cg_within(h->cg, proxy_cg);
	return loader_attach_proxy(l, h->cg, sockops, err, errlen);
}

void handoff_log(struct daemon *d, const void *data, size_t size)
{
	const struct sproxy_handoff_event *e = data;
	struct sockaddr_storage src, dst;
	struct sproxy_proc proc;
	struct conn_log c = { .proto = "tcp", .result = "ok" };
	char to[ADDR_STRLEN], route[ADDR_STRLEN + 4];

	if (size < sizeof(*e))
		return;
	proc = e->proc;
	daemon_process_comm(&proc);
	addr_from_sproxy(&e->src, &src);
	addr_from_sproxy(&e->dst, &dst);
	snprintf(route, sizeof(route), "to:%s",
		 addr_str((const struct sockaddr *)&d->opt->handoff_to, to, sizeof(to)));
	c.proc = &proc;
	c.cgroup = daemon_cgroup_name(d, proc.cgroup_id);
	c.src = (struct sockaddr *)&src;
	c.dst = (struct sockaddr *)&dst;
	c.route = route;
	c.path = "kernel";        /* the daemon's relay never saw it */
	c.up = e->up;
	c.down = e->down;
	c.duration = (double)e->duration_ns / 1e9;
	connlog_write(&c);
}
