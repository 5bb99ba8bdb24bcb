#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "addr.h"
#include "handoff.h"
#include "loader.h"
#include "log.h"
#include "pin.h"
#include "sproxy.skel.h"

static int print_fn(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && slog_level < SLOG_DEBUG)
		return 0;
	fputs("sproxy-bpf: libbpf: ", stderr);
	return vfprintf(stderr, fmt, ap);
}

/* Never captured, whatever the user says: loopback, unspecified, link-local,
 * multicast, broadcast.  (DNS to them still is: the BPF side checks port 53
 * first.) */
static const char *const default_bypass[] = {
	"127.0.0.0/8", "0.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4",
	"255.255.255.255/32", "::1/128", "::/128", "fe80::/10", "ff00::/8",
};

/* A pinned map taken over holds the earlier daemon's prefixes: those not
 * in this one's list go, once the new ones are in. */
static void drop_stale_bypass(int fd, const struct bypass_rule *rules, size_t n)
{
	struct sproxy_bypass_key key, next, stale[64];
	size_t ns = 0, i;
	void *prev = NULL;

	do {
		ns = 0;
		prev = NULL;
		while (ns < 64 && bpf_map_get_next_key(fd, prev, &next) == 0) {
			key = next;
			prev = &key;
			for (i = 0; i < n; i++)
				if (memcmp(&rules[i].key, &key, sizeof(key)) == 0)
					break;
			if (i == n)
				stale[ns++] = key;
		}
		for (i = 0; i < ns; i++)
			bpf_map_delete_elem(fd, &stale[i]);
	} while (ns == 64);
}

/* The built-in bypass prefixes and the user's, as LPM trie entries. */
static int fill_bypass(int fd, const struct loader_config *cfg, char *err, size_t errlen)
{
	size_t nd = sizeof(default_bypass) / sizeof(default_bypass[0]);
	size_t n = nd + cfg->n_bypass, i;
	struct bypass_entry *in = calloc(n, sizeof(*in));
	struct bypass_rule *rules = calloc(n, sizeof(*rules));
	int nr, rc = -1;

	if (!in || !rules) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < nd; i++)
		if (cidr_parse(default_bypass[i], &in[i].key, &in[i].port, err, errlen) < 0)
			goto out;
	memcpy(in + nd, cfg->bypass, cfg->n_bypass * sizeof(*in));
	nr = bypass_rules(in, n, rules, n, err, errlen);
	if (nr < 0)
		goto out;
	for (i = 0; i < (size_t)nr; i++) {
		if (bpf_map_update_elem(fd, &rules[i].key, &rules[i].val, BPF_ANY) < 0) {
			snprintf(err, errlen, "bypass map update: %s", strerror(errno));
			goto out;
		}
	}
	drop_stale_bypass(fd, rules, (size_t)nr);
	rc = 0;
out:
	free(in);
	free(rules);
	return rc;
}

static void sockaddr_ip6(const struct sockaddr *sa, volatile uint32_t out[4])
{
	const struct sockaddr_in6 *s6 = (const void *)sa;
	uint32_t w[4];

	memcpy(w, &s6->sin6_addr, 16);
	for (int i = 0; i < 4; i++)
		out[i] = w[i];
}

/* The daemon knows its own sockets by its tgid in its own PID namespace,
 * where the kernel can compare it (6.10 and later: the helper serves every
 * program type); before that, by the tgid the init namespace sees, which
 * is getpid() outside a PID namespace. */
static void set_pidns(struct sproxy_bpf *s)
{
	struct stat st;

	if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
				    BPF_FUNC_get_ns_current_pid_tgid, NULL) != 1) {
		log_debug("no bpf_get_ns_current_pid_tgid for cgroup programs: the "
			  "daemon's own sockets are known by mark, and by pid only "
			  "outside a PID namespace");
		return;
	}
	if (stat("/proc/self/ns/pid", &st) < 0) {
		log_warn("/proc/self/ns/pid: %s; the daemon's own sockets are known "
			 "by mark only", strerror(errno));
		return;
	}
	s->rodata->use_pidns = true;
	s->rodata->pidns_dev = st.st_dev;
	s->rodata->pidns_ino = st.st_ino;
}

static int fam_index(int family)
{
	return family == AF_INET ? 0 : 1;
}

/* The earlier daemon's pool: ports of live flows (their records, keyed by
 * port) and the free ones (drained from the queues, which this daemon
 * fills again as it binds), kept apart by family and by the DNS reserve,
 * so that each goes back to a slot of its kind. */
static int pool_collect(struct loader *l, char *err, size_t errlen)
{
	struct sproxy_bpf *s = l->skel;
	struct bpf_map *queue[4] = { s->maps.pool4, s->maps.pool4dns, s->maps.pool6,
				     s->maps.pool6dns };
	struct bpf_map *ports[2] = { s->maps.ports4, s->maps.ports6 };

	for (int i = 0; i < 4; i++) {
		l->reclaim[i] = calloc(2 * (size_t)bpf_map__max_entries(ports[i / 2]),
				       sizeof(uint32_t));
		if (!l->reclaim[i]) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	for (int f = 0; f < 2; f++) {
		size_t cap = bpf_map__max_entries(ports[f]);
		uint32_t key, next, *prev = NULL, port;
		struct sproxy_flow rec;

		while (bpf_map_get_next_key(bpf_map__fd(ports[f]), prev, &next) == 0) {
			int i = 2 * f;

			key = next;
			prev = &key;
			if (bpf_map_lookup_elem(bpf_map__fd(ports[f]), &key, &rec) == 0 &&
			    (rec.flags & SPROXY_FLOW_NETNS))
				continue;   /* a container's: its pool died with the daemon */
			if (bpf_map_lookup_elem(bpf_map__fd(ports[f]), &key, &rec) == 0 &&
			    (rec.flags & SPROXY_FLOW_RESERVE))
				i++;
			if (l->n_reclaim[i] < cap)
				l->reclaim[i][l->n_reclaim[i]++] = key;
		}
		for (int i = 2 * f; i < 2 * f + 2; i++)
			while (l->n_reclaim[i] < 2 * cap &&
			       bpf_map_lookup_and_delete_elem(bpf_map__fd(queue[i]), NULL, &port) == 0)
				l->reclaim[i][l->n_reclaim[i]++] = port;
		log_debug("UDP pool (%s) taken over: %zu ports to bind again, %zu of "
			  "them the DNS reserve's", f ? "IPv6" : "IPv4",
			  l->n_reclaim[2 * f] + l->n_reclaim[2 * f + 1], l->n_reclaim[2 * f + 1]);
	}
	return 0;
}

uint32_t loader_pool_reclaim(struct loader *l, int family, int reserve)
{
	int i = 2 * fam_index(family) + !!reserve;

	while (l->next_reclaim[i] < l->n_reclaim[i]) {
		uint32_t port = l->reclaim[i][l->next_reclaim[i]++];

		if (port && port < 65536)
			return port;
	}
	return 0;
}

int loader_port_busy(struct loader *l, int family, uint32_t port)
{
	struct sproxy_flow rec;
	struct bpf_map *m = family == AF_INET ? l->skel->maps.ports4 : l->skel->maps.ports6;

	return bpf_map_lookup_elem(bpf_map__fd(m), &port, &rec) == 0;
}

void loader_port_lost(struct loader *l, int family, uint32_t port)
{
	struct bpf_map *m = family == AF_INET ? l->skel->maps.ports4 : l->skel->maps.ports6;
	struct sproxy_flow rec;
	struct sproxy_flow_key k;

	if (bpf_map_lookup_elem(bpf_map__fd(m), &port, &rec) < 0)
		return;    /* was free: nothing lost */
	memset(&k, 0, sizeof(k));
	k.cookie = rec.cookie;
	k.dst = rec.dst;
	bpf_map_delete_elem(bpf_map__fd(l->skel->maps.flows), &k);
	bpf_map_delete_elem(bpf_map__fd(m), &port);
	log_warn("UDP pool port %u of the daemon before could not be bound again: "
		 "its flow ends (an unconnected socket's next datagram gets a new "
		 "port; a connected one's datagrams are refused)", port);
}

int loader_load(struct loader *l, const struct loader_config *cfg,
		char *err, size_t errlen)
{
	struct sproxy_bpf *s;
	struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;
	uint32_t lo6w[4];
	size_t i;
	int rc;

	memset(l, 0, sizeof(*l));
	libbpf_set_print(print_fn);
	s = sproxy_bpf__open();
	if (!s) {
		snprintf(err, errlen, "cannot open the BPF object: %s", strerror(errno));
		return -1;
	}
	l->skel = s;
	s->rodata->daemon_tgid = cfg->tgid;
	set_pidns(s);
	/* A REJECT decided in the hook then fails with ECONNREFUSED, not EPERM. */
	s->rodata->refuse_errno = libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
							  BPF_FUNC_set_retval, NULL) == 1;
	s->rodata->sock_mark = cfg->mark;
	s->rodata->netns_cookie = cfg->netns;
	if (cfg->listen4) {
		const struct sockaddr_in *a = (const void *)cfg->listen4;

		s->rodata->proxy4_ip = a->sin_addr.s_addr;
		s->rodata->proxy4_port = a->sin_port;
	}
	if (cfg->listen6) {
		sockaddr_ip6(cfg->listen6, s->rodata->proxy6_ip);
		s->rodata->proxy6_port = ((const struct sockaddr_in6 *)cfg->listen6)->sin6_port;
	}
	s->rodata->udp4_ip = htonl(INADDR_LOOPBACK);
	memcpy(lo6w, &lo6, 16);
	for (i = 0; i < 4; i++)
		s->rodata->udp6_ip[i] = lo6w[i];
	s->rodata->capture_udp = cfg->capture_udp;
	s->rodata->netns_all = cfg->netns_all;
	handoff_rodata(s, cfg->handoff);

	/* Room for map_size connections; see the tuples map for the 2x. */
	bpf_map__set_max_entries(s->maps.conns, cfg->map_size);
	bpf_map__set_max_entries(s->maps.tuples, 2 * cfg->map_size);
	s->rodata->map_capacity = cfg->map_size;
	s->rodata->map_warn = (uint64_t)cfg->map_size * 4 / 5;
	bpf_map__set_max_entries(s->maps.flows, cfg->map_size);
	bpf_map__set_max_entries(s->maps.fp_conns, cfg->map_size);
	bpf_map__set_max_entries(s->maps.fp_flows, cfg->map_size);
	bpf_map__set_max_entries(s->maps.udp_socks, cfg->map_size);
	bpf_map__set_max_entries(s->maps.pool4, cfg->pool_size);
	bpf_map__set_max_entries(s->maps.pool6, cfg->pool_size);
	/* The daemon's pool, and the pools of the namespaces it serves. */
	bpf_map__set_max_entries(s->maps.ports4, cfg->pool_size +
				 SPROXY_NETNS_MAX * SPROXY_NETNS_POOL);
	bpf_map__set_max_entries(s->maps.ports6, cfg->pool_size +
				 SPROXY_NETNS_MAX * SPROXY_NETNS_POOL);

	l->pin = cfg->pin;
	if (l->pin && pin_maps(l->pin, s->obj, err, errlen) < 0)
		return -1;
	rc = sproxy_bpf__load(s);
	if (rc) {
		if (l->pin && l->pin->takeover)
			snprintf(err, errlen, "cannot load the BPF programs with the maps "
				 "pinned in %s: %s (pins of another version of sproxy-bpf? "
				 "run with -v for libbpf's reason; 'sproxy-bpf detach' "
				 "removes them)", l->pin->dir, strerror(-rc));
		else
			snprintf(err, errlen, "cannot load the BPF programs: %s (run with -v "
				 "for the verifier log; the kernel needs BTF and cgroup BPF, "
				 "5.18 or later)", strerror(-rc));
		return -1;
	}
	if (l->pin && (pin_progs(l->pin, s->obj, err, errlen) < 0 ||
		       (l->pin->takeover && pool_collect(l, err, errlen) < 0)))
		return -1;
	return fill_bypass(bpf_map__fd(s->maps.bypass), cfg, err, errlen);
}

int loader_push_port(struct loader *l, int family, uint32_t port)
{
	struct bpf_map *m = family == AF_INET ? l->skel->maps.pool4 : l->skel->maps.pool6;

	return bpf_map_update_elem(bpf_map__fd(m), NULL, &port, BPF_ANY) ? -errno : 0;
}

static int attach_one(struct loader *l, struct bpf_program *p, int cgfd,
		      const char *where, int pinned, char *err, size_t errlen)
{
	struct bpf_link *link;
	struct stat st;

	if (!l->links)
		l->links = calloc(LOADER_MAX_LINKS, sizeof(*l->links));
	if (!l->links || l->n_links == LOADER_MAX_LINKS) {
		snprintf(err, errlen, "out of memory for BPF links");
		return -1;
	}
	if (pinned && l->pin && fstat(cgfd, &st) == 0) {
		char why[256];

		link = pin_link(l->pin, p, cgfd, (uint64_t)st.st_ino, why, sizeof(why));
		if (!link) {
			snprintf(err, errlen, "%s: %s", where, why);
			return -1;
		}
	} else {
		link = bpf_program__attach_cgroup(p, cgfd);
	}
	if (!link) {
		snprintf(err, errlen, "cannot attach %s to %s: %s",
			 bpf_program__section_name(p), where, strerror(errno));
		return -1;
	}
	l->links[l->n_links++] = link;
	return 0;
}

/* The programs that serve the application, on target; after the proxy's
 * (links[0 .. n_proxy)). */
int loader_attach_target(struct loader *l, const char *target, char *err, size_t errlen)
{
	struct sproxy_bpf *s = l->skel;
	struct bpf_program *app[] = {
		s->progs.sproxy_connect4, s->progs.sproxy_connect6,
		s->progs.sproxy_sendmsg4, s->progs.sproxy_sendmsg6,
		s->progs.sproxy_recvmsg4, s->progs.sproxy_recvmsg6,
		s->progs.sproxy_getpeername4, s->progs.sproxy_getpeername6,
		s->progs.sproxy_sockops, s->progs.sproxy_sock_release,
		s->progs.sproxy_setsockopt,
	};
	size_t n = sizeof(app) / sizeof(app[0]), i;
	int tfd, rc = 0;

	tfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0) {
		snprintf(err, errlen, "cannot open cgroup %s: %s", target, strerror(errno));
		return -1;
	}
	for (i = 0; i < n && rc == 0; i++)
		rc = attach_one(l, app[i], tfd, target, 1, err, errlen);
	close(tfd);
	return rc;
}

void loader_detach_target(struct loader *l)
{
	while (l->n_links > l->n_proxy)
		bpf_link__destroy(l->links[--l->n_links]);
}

int loader_attach(struct loader *l, const char *target, const char *proxy_cg,
		  char *err, size_t errlen)
{
	int pfd, rc;

	pfd = open(proxy_cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0) {
		snprintf(err, errlen, "cannot open cgroup %s: %s", proxy_cg, strerror(errno));
		return -1;
	}
	/* The hook the proxy asks first, so no captured connection finds it
	 * missing. */
	rc = attach_one(l, l->skel->progs.sproxy_getsockopt, pfd, proxy_cg, 0, err, errlen);
	/* The proxy's accepted sockets end their records when they close;
	 * inside the target they are covered already. */
	if (rc == 0 && strcmp(target, proxy_cg) != 0)
		rc = attach_one(l, l->skel->progs.sproxy_sockops, pfd, proxy_cg, 0, err, errlen);
	close(pfd);
	if (rc < 0)
		return -1;
	l->n_proxy = l->n_links;
	return loader_attach_target(l, target, err, errlen);
}

int loader_attach_proxy(struct loader *l, const char *cg, int with_sockops,
			char *err, size_t errlen)
{
	int fd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0) {
		snprintf(err, errlen, "cannot open cgroup %s: %s", cg, strerror(errno));
		return -1;
	}
	rc = attach_one(l, l->skel->progs.sproxy_getsockopt, fd, cg, 0, err, errlen);
	if (rc == 0 && with_sockops)
		rc = attach_one(l, l->skel->progs.sproxy_sockops, fd, cg, 0, err, errlen);
	close(fd);
	l->n_proxy = l->n_links;
	return rc;
}

int loader_attach_self(struct loader *l, const char *proxy_cg, char *err, size_t errlen)
{
	int fd = open(proxy_cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0) {
		snprintf(err, errlen, "cannot open cgroup %s: %s", proxy_cg, strerror(errno));
		return -1;
	}
	rc = attach_one(l, l->skel->progs.sproxy_sock_create, fd, proxy_cg, 0, err, errlen);
	close(fd);
	l->n_proxy = l->n_links;
	return rc;
}

void loader_live(struct loader *l, uint64_t *conns, uint64_t *tuples)
{
	*conns = __atomic_load_n(&l->skel->bss->live_conns, __ATOMIC_RELAXED);
	*tuples = __atomic_load_n(&l->skel->bss->live_tuples, __ATOMIC_RELAXED);
}

int loader_stats(struct loader *l, uint64_t out[SPROXY_STAT__MAX])
{
	int ncpu = libbpf_num_possible_cpus(), fd = bpf_map__fd(l->skel->maps.stats);
	uint64_t *vals;

	if (ncpu <= 0)
		return -1;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -1;
	for (uint32_t k = 0; k < SPROXY_STAT__MAX; k++) {
		out[k] = 0;
		if (bpf_map_lookup_elem(fd, &k, vals) == 0)
			for (int c = 0; c < ncpu; c++)
				out[k] += vals[c];
	}
	free(vals);
	return 0;
}

void loader_free(struct loader *l)
{
	for (size_t i = 0; i < l->n_links; i++)
		bpf_link__destroy(l->links[i]);
	free(l->links);
	l->links = NULL;
	l->n_links = 0;
	for (int i = 0; i < 4; i++)
		free(l->reclaim[i]);
	sproxy_bpf__destroy(l->skel);
	l->skel = NULL;
}
