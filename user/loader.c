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
#include "loader.h"
#include "log.h"
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

	/* Room for map_size connections; see the tuples map for the 2x. */
	bpf_map__set_max_entries(s->maps.conns, cfg->map_size);
	bpf_map__set_max_entries(s->maps.tuples, 2 * cfg->map_size);
	s->rodata->map_capacity = cfg->map_size;
	s->rodata->map_warn = (uint64_t)cfg->map_size * 4 / 5;
	bpf_map__set_max_entries(s->maps.flows, cfg->map_size);
	bpf_map__set_max_entries(s->maps.udp_socks, cfg->map_size);
	bpf_map__set_max_entries(s->maps.pool4, cfg->pool_size);
	bpf_map__set_max_entries(s->maps.pool6, cfg->pool_size);
	bpf_map__set_max_entries(s->maps.ports4, cfg->pool_size);
	bpf_map__set_max_entries(s->maps.ports6, cfg->pool_size);

	rc = sproxy_bpf__load(s);
	if (rc) {
		snprintf(err, errlen, "cannot load the BPF programs: %s (run with -v "
			 "for the verifier log; the kernel needs BTF and cgroup BPF, "
			 "5.18 or later)", strerror(-rc));
		return -1;
	}
	return fill_bypass(bpf_map__fd(s->maps.bypass), cfg, err, errlen);
}

int loader_push_port(struct loader *l, int family, uint32_t port)
{
	struct bpf_map *m = family == AF_INET ? l->skel->maps.pool4 : l->skel->maps.pool6;

	return bpf_map_update_elem(bpf_map__fd(m), NULL, &port, BPF_ANY) ? -errno : 0;
}

static int attach_one(struct loader *l, struct bpf_program *p, int cgfd,
		      const char *where, char *err, size_t errlen)
{
	struct bpf_link *link;

	if (!l->links)
		l->links = calloc(LOADER_MAX_LINKS, sizeof(*l->links));
	if (!l->links || l->n_links == LOADER_MAX_LINKS) {
		snprintf(err, errlen, "out of memory for BPF links");
		return -1;
	}
	link = bpf_program__attach_cgroup(p, cgfd);
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
		s->progs.sproxy_setsockopt, s->progs.sproxy_sockops_opts,
	};
	size_t n = sizeof(app) / sizeof(app[0]), i;
	int tfd, rc = 0;

	tfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0) {
		snprintf(err, errlen, "cannot open cgroup %s: %s", target, strerror(errno));
		return -1;
	}
	for (i = 0; i < n && rc == 0; i++)
		rc = attach_one(l, app[i], tfd, target, err, errlen);
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
	rc = attach_one(l, l->skel->progs.sproxy_getsockopt, pfd, proxy_cg, err, errlen);
	/* The proxy's accepted sockets end their records when they close;
	 * inside the target they are covered already. */
	if (rc == 0 && strcmp(target, proxy_cg) != 0)
		rc = attach_one(l, l->skel->progs.sproxy_sockops, pfd, proxy_cg, err, errlen);
	close(pfd);
	if (rc < 0)
		return -1;
	l->n_proxy = l->n_links;
	return loader_attach_target(l, target, err, errlen);
}

int loader_attach_self(struct loader *l, const char *proxy_cg, char *err, size_t errlen)
{
	int fd = open(proxy_cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0) {
		snprintf(err, errlen, "cannot open cgroup %s: %s", proxy_cg, strerror(errno));
		return -1;
	}
	rc = attach_one(l, l->skel->progs.sproxy_sock_create, fd, proxy_cg, err, errlen);
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
	sproxy_bpf__destroy(l->skel);
	l->skel = NULL;
}
