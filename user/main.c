/* sproxy-bpf: the daemon's life: check, listen, load, attach, serve,
 * detach.  The command line is cli.c's; the rest has a file per job. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <bpf/libbpf.h>
#include <event2/event.h>

#include "addr.h"
#include "cgroup.h"
#include "cli.h"
#include "daemon.h"
#include "dnsserver.h"
#include "cgwatch.h"
#include "events.h"
#include "fakeip.h"
#include "log.h"
#include "notify.h"
#include "preflight.h"
#include "proxy.h"
#include "resolvconf.h"
#include "rules.h"
#include "sproxy.skel.h"
#include "sysenv.h"
#include "udp.h"

/* The defaults, or what the user gave plus a loopback listener on the same
 * port for a family given none: a family without a listener would go
 * uncaptured, silently.  Returns how many were given. */
static int setup_listeners(struct options *o)
{
	int given = o->n_listen, has4 = 0, has6 = 0;
	uint16_t port;
	char spec[32];

	if (!given) {
		addr_parse("127.0.0.1:3333", 0, &o->listen[0], NULL, 0);
		addr_parse("[::1]:3333", 0, &o->listen[1], NULL, 0);
		o->n_listen = 2;
		return 0;
	}
	for (int i = 0; i < given; i++) {
		has4 |= o->listen[i].ss_family == AF_INET;
		has6 |= o->listen[i].ss_family == AF_INET6;
	}
	if (has4 && has6)
		return given;
	port = addr_port((struct sockaddr *)&o->listen[0]);
	snprintf(spec, sizeof(spec), has4 ? "[::1]:%u" : "127.0.0.1:%u", port);
	addr_parse(spec, 0, &o->listen[o->n_listen++], NULL, 0);
	log_info("--listen gave no %s address: listening on %s too, so that %s "
		 "connections are captured", has4 ? "IPv6" : "IPv4", spec,
		 has4 ? "IPv6" : "IPv4");
	return given;
}

/* Everything a running daemon made, so that one teardown undoes it. */
struct run {
	struct daemon d;
	struct proxy_listener *lis[9];   /* as many as options.listen */
	int n_lis;
	struct loader_config lc;
	struct bypass_entry bypass[256 + 9];
	struct events *ev;
	struct cgwatch *watch;
	int n_given;             /* listeners from --listen; the others are ours */
	int rc;                  /* exit status once the loop ends */
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

	r->d.dns = dns_server_new(r->d.base, &dc, r->err, sizeof(r->err));
	if (!r->d.dns) {
		log_err("DNS: %s", r->err);
		return -1;
	}
	return 0;
}

/* Listen before attaching: a captured connection must find us.  0, or an
 * exit status: a given address that is not ours is a bad value.  A listener
 * the user gave must work; one we added (the defaults, a missing family's)
 * may fail for want of that family's loopback address (IPv6 disabled in
 * this namespace): that family then goes uncaptured, with a warning, and
 * the UDP pool is IPv4-only too.  Any other failure (in use) is fatal. */
static int open_listeners(struct run *r, struct options *o)
{
	for (int i = 0; i < o->n_listen; i++) {
		struct proxy_listener *l = proxy_listen(&r->d, &o->listen[i], r->err,
							sizeof(r->err));
		int fam = o->listen[i].ss_family, absent = errno == EADDRNOTAVAIL ||
							 errno == EAFNOSUPPORT;

		if (!l) {
			if (i >= r->n_given && absent) {
				log_warn("%s; %s connections will not be captured", r->err,
					 fam == AF_INET6 ? "IPv6" : "IPv4");
				continue;
			}
			log_err("%s%s", r->err, absent ? " (--listen wants an address of "
				"this machine, in this network namespace)" : "");
			return absent ? EXIT_USAGE : EXIT_RUNTIME;
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
			struct sproxy_addr a;

			addr_to_sproxy((struct sockaddr *)ss, &a);
			memcpy(e->key.ip, a.ip, sizeof(e->key.ip));
			e->key.prefixlen = 128;
			e->port = htons(addr_port((struct sockaddr *)ss));
		}
	}
	r->lc.bypass = r->bypass;
}

static void log_stats(struct loader *l)
{
	uint64_t st[SPROXY_STAT__MAX], conns, tuples;

	if (loader_stats(l, st) < 0)
		return;
	loader_live(l, &conns, &tuples);
	log_info("TCP records open: %llu sockets, %llu connections",
		 (unsigned long long)conns, (unsigned long long)tuples);
	log_info("captured %llu TCP, %llu UDP flows, %llu DNS; bypassed %llu; "
		 "no record %llu; another connection's record %llu; UDP pool dry %llu; "
		 "map full %llu",
		 (unsigned long long)st[SPROXY_STAT_TCP_REDIRECTED],
		 (unsigned long long)st[SPROXY_STAT_UDP_REDIRECTED],
		 (unsigned long long)st[SPROXY_STAT_DNS_REDIRECTED],
		 (unsigned long long)st[SPROXY_STAT_BYPASSED],
		 (unsigned long long)st[SPROXY_STAT_ORIGDST_MISS],
		 (unsigned long long)st[SPROXY_STAT_RECORD_MISMATCH],
		 (unsigned long long)st[SPROXY_STAT_POOL_EMPTY],
		 (unsigned long long)st[SPROXY_STAT_MAP_FULL]);
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
	events_free(r->ev);
	if (d->dns)
		dns_server_free(d->dns);
	if (d->bpf.skel)
		loader_free(&d->bpf);
	cgwatch_free(r->watch);
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
	if (preflight_kernel() < 0)
		return EXIT_RUNTIME;
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
	if (o->fakeip_store && preflight_store(o->fakeip_store) < 0)
		return EXIT_USAGE;
	if (!o->disable_fakeip &&
	    (preflight_fakeip_local(o->fakeip_range[0] ? o->fakeip_range[0] : FAKEIP_DEFAULT_V4,
				    o->fakeip_range[0] != NULL) < 0 ||
	     preflight_fakeip_local(o->fakeip_range[1] ? o->fakeip_range[1] : FAKEIP_DEFAULT_V6,
				    o->fakeip_range[1] != NULL) < 0))
		return EXIT_USAGE;
	if (connlog_open(o->log_path, o->json) < 0) {
		log_err("--log %s: cannot open it: %s", o->log_path, strerror(errno));
		return EXIT_USAGE;
	}
	return 0;
}

/* The captured cgroup removed (a user's slice at logout): the links would
 * hold a dead cgroup and capture would end in silence.  Exit, so that a
 * supervisor sees it, or with --reattach wait for the path to come back. */
static void on_target(void *arg, int present)
{
	struct run *r = arg;
	struct daemon *d = &r->d;

	if (r->rc)
		return;          /* on the way out already */
	if (!present && !d->opt->reattach) {
		log_err("cgroup %s was removed: nothing left to capture; exiting "
			"(--reattach waits for it to come back)", d->target);
		r->rc = EXIT_CGROUP_GONE;
		event_base_loopbreak(d->base);
	} else if (!present) {
		loader_detach_target(&d->bpf);
		log_warn("cgroup %s was removed: capture paused until it comes back",
			 d->target);
	} else if (loader_attach_target(&d->bpf, d->target, r->err, sizeof(r->err)) < 0) {
		log_err("cgroup %s is back but: %s; exiting", d->target, r->err);
		r->rc = EXIT_RUNTIME;
		event_base_loopbreak(d->base);
	} else {
		log_info("cgroup %s is back: attached again", d->target);
	}
}

static int serve(struct run *r, struct options *o)
{
	struct daemon *d = &r->d;
	struct loader_config *lc = &r->lc;
	char a[ADDR_STRLEN], b[ADDR_STRLEN];
	int rc;

	/* Until the loop handles it (reopening the log), a SIGHUP must not
	 * kill us half set up, our cgroup left behind. */
	signal(SIGHUP, SIG_IGN);
	if (enter_proxy_cgroup(r) < 0)
		return EXIT_RUNTIME;
	signal(SIGPIPE, SIG_IGN);
	sysenv_raise_nofile();
	r->n_given = setup_listeners(o);
	if (!o->n_resolvers)
		resolvconf_read("/etc/resolv.conf", o);
	d->base = event_base_new();
	if (!d->base) {
		log_err("cannot create the event loop");
		return EXIT_RUNTIME;
	}
	d->netns = sysenv_netns_cookie();
	rc = open_listeners(r, o);
	if (rc)
		return rc;
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
	/* Before evdns makes its sockets, so that they get our mark. */
	if (loader_attach_self(&d->bpf, r->proxy_cg, r->err, sizeof(r->err)) < 0) {
		log_err("%s", r->err);
		return EXIT_RUNTIME;
	}
	if (start_dns(r) < 0)
		return EXIT_USAGE;
	d->tuples_fd = bpf_map__fd(d->bpf.skel->maps.tuples);
	d->udp = udp_pool_new(d, o->udp_flows, r->err, sizeof(r->err));
	if (!d->udp) {
		log_err("%s", r->err);
		return EXIT_RUNTIME;
	}
	r->ev = events_start(d);
	if (!r->ev)
		return EXIT_RUNTIME;
	if (loader_attach(&d->bpf, d->target, r->proxy_cg, r->err, sizeof(r->err)) < 0) {
		log_err("%s", r->err);
		return EXIT_RUNTIME;
	}
	r->watch = cgwatch_new(d->base, d->target, on_target, r, r->err, sizeof(r->err));
	if (!r->watch) {
		log_err("%s", r->err);
		return EXIT_RUNTIME;
	}
	notify_ready("capturing %s (pid %d); listening on %s%s%s", d->target,
		     (int)getpid(), lc->listen4 ? addr_str(lc->listen4, a, sizeof(a)) : "",
		     lc->listen4 && lc->listen6 ? " and " : "",
		     lc->listen6 ? addr_str(lc->listen6, b, sizeof(b)) : "");
	event_base_dispatch(d->base);
	return r->rc;
}

static int run(struct options *o, int argc, char **argv)
{
	static struct run r;     /* large: not on the stack */
	int rc;

	memset(&r, 0, sizeof(r));
	r.d.opt = o;
	r.d.rules = rules_ref(o->rules);
	r.d.argc = argc;
	r.d.argv = argv;
	rc = check_args(&r, o);
	if (rc)
		return rc;
	events_route_libevent_log();
	rc = serve(&r, o);
	teardown(&r);
	rules_unref(r.d.rules);
	return rc;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	/* For SIGHUP, as given: parsing may blank a password in argv. */
	char **args = cli_copy_args(argc, argv);
	int rc;

	cli_parse(argc, argv, &o);
	rc = run(&o, args ? argc : 0, args);
	cli_options_free(&o);
	cli_free_args(args);
	return rc;
}
