/* sproxy-bpf: the command line and the daemon's life: attach, serve,
 * detach. */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <bpf/libbpf.h>
#include <event2/event.h>

#include "addr.h"
#include "cgroup.h"
#include "cli.h"
#include "daemon.h"
#include "dnsserver.h"
#include "log.h"
#include "proxy.h"
#include "sproxy.skel.h"
#include "udp.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/* Nameservers of /etc/resolv.conf, unless one is our own listener. */
static void default_resolvers(struct options *o)
{
	FILE *fp = fopen("/etc/resolv.conf", "re");
	char line[512], ns[256], err[128];

	if (!fp) {
		log_warn("no --resolver and /etc/resolv.conf: %s; names that are "
			 "not FakeIP answers will fail", strerror(errno));
		return;
	}
	while (o->n_resolvers < 8 && fgets(line, sizeof(line), fp)) {
		struct sockaddr_storage *ss = &o->resolvers[o->n_resolvers];
		int i, ours = 0;

		if (sscanf(line, " nameserver %255s", ns) != 1 ||
		    addr_parse(ns, 53, ss, err, sizeof(err)) < 0)
			continue;
		for (i = 0; i < o->n_listen; i++)
			ours |= addr_equal((struct sockaddr *)ss, (struct sockaddr *)&o->listen[i]);
		if (ours)
			log_warn("resolver %s in /etc/resolv.conf is this proxy: skipped", ns);
		else
			o->n_resolvers++;
	}
	fclose(fp);
	if (!o->n_resolvers)
		log_warn("no usable resolver in /etc/resolv.conf; pass --resolver");
}

static uint64_t netns_cookie(void)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd >= 0) {
		if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) < 0)
			cookie = 0;
		close(fd);
	}
	return cookie;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_max < 1048576) {
		struct rlimit more = { 1048576, 1048576 };

		if (setrlimit(RLIMIT_NOFILE, &more) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static void notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd;

	if (!path || !*path || strlen(path) >= sizeof(sun.sun_path))
		return;
	memcpy(sun.sun_path, path, strlen(path));
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = 0;
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sun, len) < 0)
		log_warn("NOTIFY_SOCKET %s: %s", path, strerror(errno));
	close(fd);
}

static int on_bpf_event(void *ctx, void *data, size_t size)
{
	struct daemon *d = ctx;
	const struct sproxy_event *e = data;
	static time_t last_full;

	if (size < sizeof(*e))
		return 0;
	switch (e->type) {
	case SPROXY_EV_UDP_RELEASE:
		udp_pool_release(d->udp, e->cookie);
		break;
	case SPROXY_EV_POOL_EMPTY:
		udp_pool_dry(d->udp, (int)e->family, e->proc.comm, e->proc.tgid);
		break;
	case SPROXY_EV_UDP_LIMIT:
		udp_pool_limited(d->udp, e->proc.comm, e->proc.tgid);
		break;
	case SPROXY_EV_MAP_FULL:
		if (time(NULL) != last_full)
			log_warn("a BPF record map is full: a connection of %.16s (pid %u) "
				 "went uncaptured; raise --map-size", e->proc.comm, e->proc.tgid);
		last_full = time(NULL);
		break;
	}
	return 0;
}

static void on_ringbuf(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ring_buffer__consume(arg);
}

/* libevent's own messages (evdns: "nameserver ... has failed") go
 * through our log, with its prefix and levels. */
static void on_libevent_log(int severity, const char *msg)
{
	int level = severity == EVENT_LOG_ERR ? SLOG_ERR :
		    severity == EVENT_LOG_WARN ? SLOG_WARN :
		    severity == EVENT_LOG_MSG ? SLOG_INFO : SLOG_DEBUG;

	slog(level, "libevent: %s", msg);
}

/* The store is written long after start: say now if it cannot be. */
static int check_store(const char *path)
{
	char copy[PATH_MAX];
	const char *dir;

	snprintf(copy, sizeof(copy), "%s", path);
	dir = dirname(copy);
	if (access(dir, W_OK | X_OK) < 0) {
		log_err("--fakeip-store %s: directory %s: %s", path, dir, strerror(errno));
		return -1;
	}
	if (access(path, F_OK) == 0 && access(path, R_OK | W_OK) < 0) {
		log_err("--fakeip-store %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	log_info("%s: detaching", strsignal((int)sig));
	event_base_loopbreak(arg);
}

static void setup_listeners(struct options *o)
{
	if (o->n_listen)
		return;
	addr_parse("127.0.0.1:3333", 0, &o->listen[0], NULL, 0);
	addr_parse("[::1]:3333", 0, &o->listen[1], NULL, 0);
	o->n_listen = 2;
}

/* Everything a running daemon made, so that one teardown undoes it. */
struct run {
	struct daemon d;
	struct proxy_listener *lis[8];
	int n_lis;
	struct loader_config lc;
	struct bypass_entry bypass[256 + 8];
	struct ring_buffer *rb;
	struct event *rbev, *sigs[2];
	char self_cg[PATH_MAX], own_cg[PATH_MAX];
	const char *proxy_cg;
	char err[512];
};

/* The getsockopt hook runs in the cgroup of the proxy's sockets: the one
 * the daemon is in when it makes its listeners.  Inside the target that is
 * covered already; elsewhere the daemon gets a cgroup of its own first,
 * never the root's. */
static int enter_proxy_cgroup(struct run *r)
{
	struct daemon *d = &r->d;

	if (cg_self(d->cg_mount, r->self_cg, sizeof(r->self_cg)) < 0) {
		log_err("cannot read /proc/self/cgroup");
		return -1;
	}
	if (cg_within(r->self_cg, d->target)) {
		r->proxy_cg = d->target;
		return 0;
	}
	if (cg_own_create(d->cg_mount, r->own_cg, sizeof(r->own_cg), r->err,
			  sizeof(r->err)) < 0) {
		r->own_cg[0] = 0;
		log_err("%s", r->err);
		return -1;
	}
	if (cg_move_self(r->own_cg) < 0) {
		log_err("cannot move into %s: %s", r->own_cg, strerror(errno));
		return -1;
	}
	r->proxy_cg = r->own_cg;
	return 0;
}

static int start_dns(struct run *r)
{
	const struct options *o = r->d.opt;
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
	};

	r->d.dns = dns_server_new(r->d.base, &dc, r->err, sizeof(r->err));
	if (!r->d.dns) {
		log_err("DNS: %s", r->err);
		return -1;
	}
	return 0;
}

/* Listen before attaching: a captured connection must find us.  Without
 * --listen, a machine with no IPv6 loopback still runs, IPv4 only. */
static int open_listeners(struct run *r, struct options *o, int defaults)
{
	for (int i = 0; i < o->n_listen; i++) {
		struct proxy_listener *l = proxy_listen(&r->d, &o->listen[i], r->err,
							sizeof(r->err));
		int fam = o->listen[i].ss_family;

		if (!l) {
			if (defaults && fam == AF_INET6) {
				log_warn("%s; IPv6 connections will not be captured", r->err);
				continue;
			}
			log_err("%s", r->err);
			return -1;
		}
		r->lis[r->n_lis++] = l;
		if (fam == AF_INET && !r->lc.listen4)
			r->lc.listen4 = (struct sockaddr *)&o->listen[i];
		if (fam == AF_INET6 && !r->lc.listen6)
			r->lc.listen6 = (struct sockaddr *)&o->listen[i];
	}
	return 0;
}

/* The user's --bypass, and our own listeners: a wildcard listener is
 * reached on loopback; any other address of ours is never redirected. */
static void fill_bypass(struct run *r, struct options *o)
{
	memcpy(r->bypass, o->bypass, sizeof(o->bypass[0]) * (size_t)o->n_bypass);
	r->lc.n_bypass = (size_t)o->n_bypass;
	for (int i = 0; i < o->n_listen; i++) {
		struct sockaddr_storage *ss = &o->listen[i];

		if (ss->ss_family == AF_INET) {
			struct sockaddr_in *s4 = (void *)ss;

			if (s4->sin_addr.s_addr == INADDR_ANY)
				s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		} else {
			struct sockaddr_in6 *s6 = (void *)ss;

			if (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
				s6->sin6_addr = in6addr_loopback;
		}
		if (!addr_is_loopback((struct sockaddr *)ss)) {
			struct bypass_entry *e = &r->bypass[r->lc.n_bypass++];

			addr_to_sproxy((struct sockaddr *)ss, (struct sproxy_addr *)e->key.ip);
			e->key.prefixlen = 128;
			e->port = htons(addr_port((struct sockaddr *)ss));
		}
	}
	r->lc.bypass = r->bypass;
}

/* Ring buffer events from the BPF side, and the signals that stop us. */
static int start_events(struct run *r)
{
	struct daemon *d = &r->d;

	r->rb = ring_buffer__new(bpf_map__fd(d->bpf.skel->maps.events), on_bpf_event,
				 d, NULL);
	if (!r->rb) {
		log_err("ring buffer: %s", strerror(errno));
		return -1;
	}
	r->rbev = event_new(d->base, ring_buffer__epoll_fd(r->rb), EV_READ | EV_PERSIST,
			    on_ringbuf, r->rb);
	r->sigs[0] = evsignal_new(d->base, SIGINT, on_signal, d->base);
	r->sigs[1] = evsignal_new(d->base, SIGTERM, on_signal, d->base);
	if (!r->rbev || !r->sigs[0] || !r->sigs[1] || event_add(r->rbev, NULL) < 0 ||
	    event_add(r->sigs[0], NULL) < 0 || event_add(r->sigs[1], NULL) < 0) {
		log_err("cannot set up events");
		return -1;
	}
	return 0;
}

static void log_stats(struct loader *l)
{
	uint64_t st[SPROXY_STAT__MAX];

	if (loader_stats(l, st) < 0)
		return;
	log_info("captured %llu TCP, %llu UDP flows, %llu DNS; bypassed %llu; "
		 "no record %llu; UDP pool dry %llu; map full %llu; UDP flows over "
		 "--udp-flows-per-process %llu; UDP events not sent (rate limit) %llu",
		 (unsigned long long)st[SPROXY_STAT_TCP_REDIRECTED],
		 (unsigned long long)st[SPROXY_STAT_UDP_REDIRECTED],
		 (unsigned long long)st[SPROXY_STAT_DNS_REDIRECTED],
		 (unsigned long long)st[SPROXY_STAT_BYPASSED],
		 (unsigned long long)st[SPROXY_STAT_ORIGDST_MISS],
		 (unsigned long long)st[SPROXY_STAT_POOL_EMPTY],
		 (unsigned long long)st[SPROXY_STAT_MAP_FULL],
		 (unsigned long long)st[SPROXY_STAT_UDP_PROC_LIMIT],
		 (unsigned long long)st[SPROXY_STAT_UDP_EVENTS_QUIET]);
}

/* Detach first: from then on, traffic goes direct.  Then free, leave our
 * own cgroup and remove it. */
static void teardown(struct run *r)
{
	struct daemon *d = &r->d;
	int i;

	if (d->bpf.skel) {
		log_stats(&d->bpf);
		for (size_t k = 0; k < d->bpf.n_links; k++)
			bpf_link__destroy(d->bpf.links[k]);
		d->bpf.n_links = 0;
	}
	udp_pool_free(d->udp);
	for (i = 0; i < r->n_lis; i++)
		proxy_listener_free(r->lis[i]);
	if (r->rbev)
		event_free(r->rbev);
	for (i = 0; i < 2; i++)
		if (r->sigs[i])
			event_free(r->sigs[i]);
	ring_buffer__free(r->rb);
	if (d->dns)
		dns_server_free(d->dns);
	if (d->bpf.skel)
		loader_free(&d->bpf);
	if (r->own_cg[0]) {
		if (cg_move_self(r->self_cg) < 0)
			log_warn("cannot move back to %s: %s", r->self_cg, strerror(errno));
		cg_own_remove(d->cg_mount, r->own_cg);
	}
	if (d->base) {
		event_base_loop(d->base, EVLOOP_NONBLOCK);  /* evdns's cancellations */
		event_base_free(d->base);
	}
	connlog_close();
}

/* Checks that need no privilege and change nothing.  0, or an exit code. */
static int check_args(struct run *r, struct options *o)
{
	struct daemon *d = &r->d;

	slog_level = o->verbose ? SLOG_DEBUG : SLOG_INFO;
	if (cg_mount(d->cg_mount, sizeof(d->cg_mount)) < 0) {
		log_err("no cgroup v2 hierarchy in /proc/mounts: mount one (mount -t "
			"cgroup2 none /sys/fs/cgroup) or boot with systemd.unified_cgroup_hierarchy=1");
		return EXIT_USAGE;
	}
	if (cg_resolve(d->cg_mount, o->cgroup, o->allow_root, d->target,
		       sizeof(d->target), r->err, sizeof(r->err)) < 0) {
		log_err("%s", r->err);
		return EXIT_USAGE;
	}
	if (geteuid() != 0)
		log_warn("not running as root: loading BPF programs needs CAP_BPF, "
			 "CAP_NET_ADMIN and CAP_SYS_ADMIN");
	if (o->fakeip_store && check_store(o->fakeip_store) < 0)
		return EXIT_USAGE;
	if (connlog_open(o->log_path, o->json) < 0) {
		log_err("cannot open log %s: %s", o->log_path, strerror(errno));
		return EXIT_USAGE;
	}
	return 0;
}

static int serve(struct run *r, struct options *o)
{
	struct daemon *d = &r->d;
	struct loader_config *lc = &r->lc;
	int defaults = !o->n_listen;
	char a[ADDR_STRLEN], b[ADDR_STRLEN];

	if (enter_proxy_cgroup(r) < 0)
		return EXIT_RUNTIME;
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	setup_listeners(o);
	if (!o->n_resolvers)
		default_resolvers(o);
	d->base = event_base_new();
	if (!d->base) {
		log_err("cannot create the event loop");
		return EXIT_RUNTIME;
	}
	d->netns = netns_cookie();
	if (start_dns(r) < 0)
		return EXIT_USAGE;
	if (open_listeners(r, o, defaults) < 0)
		return EXIT_RUNTIME;
	fill_bypass(r, o);
	lc->tgid = (uint32_t)getpid();
	lc->mark = o->mark;
	lc->netns = d->netns;
	lc->map_size = o->map_size;
	lc->pool_size = o->udp_flows;
	lc->capture_udp = 1;
	if (loader_load(&d->bpf, lc, r->err, sizeof(r->err)) < 0) {
		log_err("%s", r->err);
		return EXIT_RUNTIME;
	}
	d->tuples_fd = bpf_map__fd(d->bpf.skel->maps.tuples);
	d->udp = udp_pool_new(d, o->udp_flows, r->err, sizeof(r->err));
	if (!d->udp) {
		log_err("%s", r->err);
		return EXIT_RUNTIME;
	}
	if (start_events(r) < 0)
		return EXIT_RUNTIME;
	if (loader_attach(&d->bpf, d->target, r->proxy_cg, r->err, sizeof(r->err)) < 0) {
		log_err("%s", r->err);
		return EXIT_RUNTIME;
	}
	log_info("ready: capturing %s (pid %d); listening on %s%s%s", d->target,
		 (int)getpid(), lc->listen4 ? addr_str(lc->listen4, a, sizeof(a)) : "",
		 lc->listen4 && lc->listen6 ? " and " : "",
		 lc->listen6 ? addr_str(lc->listen6, b, sizeof(b)) : "");
	notify_ready();
	event_base_dispatch(d->base);
	return 0;
}

static int run(struct options *o)
{
	static struct run r;     /* large: not on the stack */
	int rc;

	memset(&r, 0, sizeof(r));
	r.d.opt = o;
	rc = check_args(&r, o);
	if (rc)
		return rc;
	event_set_log_callback(on_libevent_log);
	rc = serve(&r, o);
	teardown(&r);
	return rc;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };

	cli_parse(argc, argv, &o);
	return run(&o);
}
