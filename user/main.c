/* sproxy-bpf: the daemon's life: check, listen, load, attach, serve,
 * detach.  The command line is cli.c's; the rest has a file per job. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <bpf/libbpf.h>
#include <event2/event.h>

#include "addr.h"
#include "cgroup.h"
#include "cli.h"
#include "control.h"
#include "daemon.h"
#include "dnsserver.h"
#include "cgwatch.h"
#include "events.h"
#include "fakeip.h"
#include "handoff.h"
#include "log.h"
#include "netns.h"
#include "notify.h"
#include "owner.h"
#include "pin.h"
#include "policyset.h"
#include "preflight.h"
#include "privhelper.h"
#include "privs.h"
#include "proxy.h"
#include "reload.h"
#include "resolvconf.h"
#include "fastpath.h"
#include "run.h"
#include "sproxy.skel.h"
#include "status.h"
#include "sysenv.h"
#include "tproxy.h"
#include "udp.h"
#include "detach.h"
#include "upstream.h"

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
		/* run: any free port, so that several runs live side by side. */
		if (o->run_argv) {
			((struct sockaddr_in *)&o->listen[0])->sin_port = 0;
			((struct sockaddr_in6 *)&o->listen[1])->sin6_port = 0;
		}
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
	struct control *ctl;
	int n_given;             /* listeners from --listen; the others are ours */
	int rc;                  /* exit status once the loop ends */
	char self_cg[PATH_MAX], own_cg[PATH_MAX];
	const char *proxy_cg;
	struct pin pin;          /* with --pin */
	struct handoff handoff;  /* with --to */
	uint64_t target_id;
	struct runcmd *cmd;      /* run: the command, started once ready */
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
	if (daemon_dns_new(&r->d, r->err, sizeof(r->err)) < 0) {
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
		 "map full %llu; UDP flows over --udp-flows-per-process %llu; UDP "
		 "events not sent (rate limit) %llu",
		 (unsigned long long)st[SPROXY_STAT_TCP_REDIRECTED],
		 (unsigned long long)st[SPROXY_STAT_UDP_REDIRECTED],
		 (unsigned long long)st[SPROXY_STAT_DNS_REDIRECTED],
		 (unsigned long long)st[SPROXY_STAT_BYPASSED],
		 (unsigned long long)st[SPROXY_STAT_ORIGDST_MISS],
		 (unsigned long long)st[SPROXY_STAT_RECORD_MISMATCH],
		 (unsigned long long)st[SPROXY_STAT_POOL_EMPTY],
		 (unsigned long long)st[SPROXY_STAT_MAP_FULL],
		 (unsigned long long)st[SPROXY_STAT_UDP_PROC_LIMIT],
		 (unsigned long long)st[SPROXY_STAT_UDP_EVENTS_QUIET]);
	log_info("kernel fast path: %llu TCP, %llu UDP flows, %llu refused by rules, "
		 "%llu proxied for want of room",
		 (unsigned long long)st[SPROXY_STAT_FAST_TCP],
		 (unsigned long long)st[SPROXY_STAT_FAST_UDP],
		 (unsigned long long)st[SPROXY_STAT_FAST_REJECT],
		 (unsigned long long)st[SPROXY_STAT_FAST_FULL]);
}

/* With --pin the target's links stay (fail-closed, until a daemon takes
 * them over or detach removes them); not on a cgroup that is gone. */
static void pin_leave(struct run *r)
{
	const char *target;

	if (!r->pin.dir[0])
		return;
	/* A first start that failed (or was refused) leaves nothing; a
	 * takeover that failed leaves the earlier daemon's pins. */
	if (r->rc == EXIT_CGROUP_GONE || (!r->watch && !r->pin.takeover)) {
		if (pin_remove(r->pin.dir, NULL, r->err, sizeof(r->err)) < 0)
			log_warn("%s", r->err);
		r->d.bpf.pin = NULL;    /* nothing stays captured: fail open */
		return;
	}
	/* A refused takeover leaves the pins of their own cgroup. */
	target = r->pin.takeover ? r->pin.old.target : r->d.target;
	log_info("%s stays captured by the programs pinned in %s: connections fail "
		 "until a daemon with the same --pin takes over; 'sproxy-bpf detach %s "
		 "--pin %s' lets traffic go direct", target, r->pin.dir, target, r->pin.dir);
}

/* Detach first: from then on, traffic goes direct (unless pinned).  Then
 * free, leave our own cgroup and remove it. */
static void teardown(struct run *r)
{
	struct daemon *d = &r->d;
	int i;

	control_free(r->ctl);
	if (d->bpf.skel) {
		log_stats(&d->bpf);
		for (size_t k = 0; k < d->bpf.n_links; k++)
			bpf_link__destroy(d->bpf.links[k]);
		d->bpf.n_links = 0;
	}
	pin_leave(r);
	reload_stop(d);              /* before what a reload would touch */
	events_drain(r->ev);         /* kernel-path closes already reported */
	fastpath_free(d->fast);
	d->fast = NULL;
	udp_pool_free(d->udp);
	netns_stop(d->nsctl);
	upstream_shutdown();
	for (i = 0; i < r->n_lis; i++)
		proxy_listener_free(r->lis[i]);
	daemon_loops_stop(d);
	events_free(r->ev);
	if (d->dns)
		dns_server_free(d->dns);
	if (d->bpf.skel)
		loader_free(&d->bpf);
	cgwatch_free(r->watch);
	runcmd_stop(r->cmd);
	/* After the store is written: the helper writes it. */
	i = privhelper_finish(r->err, sizeof(r->err));
	if (i < 0)
		log_warn("%s", r->err);
	else if (i == 0 && r->own_cg[0]) {
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

/* --pin DIR must be on a BPF filesystem; and no other daemon's programs
 * may be on the target, unless they are the ones pinned in DIR. */
static int pin_guard(struct run *r, struct options *o)
{
	struct stat st;

	if (o->pin_dir && pin_open(&r->pin, o->pin_dir, r->err, sizeof(r->err)) < 0) {
		r->pin.dir[0] = 0;
		log_err("%s", r->err);
		return -1;
	}
	if (stat(r->d.target, &st) < 0)
		return 0;        /* attach will say */
	r->target_id = (uint64_t)st.st_ino;
	if (owner_guard(r->d.target, o->pin_dir ? &r->pin : NULL, r->err,
			sizeof(r->err)) < 0) {
		log_err("%s", r->err);
		return -1;
	}
	return 0;
}

/* What a later daemon taking the pins over must agree with; checked
 * before load, written once loaded.  0, or an exit status. */
static int pin_meta(struct run *r, int write)
{
	struct pin_meta m = {
		.magic = PIN_MAGIC, .size = sizeof(m), .pid = (uint32_t)getpid(),
		.mark = r->lc.mark, .map_size = r->lc.map_size,
		.pool_size = r->lc.pool_size, .target_id = r->target_id,
	};

	if (!r->d.opt->pin_dir)
		return 0;
	if (r->lc.listen4)
		addr_to_sproxy(r->lc.listen4, &m.listen4);
	if (r->lc.listen6)
		addr_to_sproxy(r->lc.listen6, &m.listen6);
	snprintf(m.target, sizeof(m.target), "%.255s", r->d.target);
	if (write ? pin_write_meta(&r->pin, &m, r->err, sizeof(r->err))
		  : pin_check(&r->pin, &m, r->err, sizeof(r->err))) {
		log_err("%s", r->err);
		return write ? EXIT_RUNTIME : EXIT_USAGE;
	}
	if (write && r->pin.takeover && !r->watch)
		log_info("took over the programs and maps that pid %u pinned in %s",
			 r->pin.old.pid, r->pin.dir);
	r->lc.pin = &r->pin;
	return 0;
}

/* The pins now hold links on the cgroup made again: the meta says so. */
static void pin_retarget(struct run *r)
{
	struct stat st;

	if (!r->lc.pin || stat(r->d.target, &st) < 0)
		return;
	r->target_id = (uint64_t)st.st_ino;
	pin_meta(r, 1);
}

/* Checks before anything is loaded; they change nothing but make the
 * --pin directory.  0, or an exit code. */
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
	if (pin_guard(r, o))
		return o->pin_dir && !r->pin.dir[0] ? EXIT_USAGE : EXIT_RUNTIME;
	if (geteuid() != 0)
		log_warn("not running as root: loading BPF programs needs CAP_BPF, "
			 "CAP_NET_ADMIN and CAP_SYS_ADMIN");
	return preflight_serving(o) < 0 ? EXIT_USAGE : 0;
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
		d->attached_at = time(NULL);
		log_info("cgroup %s is back: attached again", d->target);
		pin_retarget(r);
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
	rc = handoff_prepare(&r->handoff, o, d->cg_mount, d->target);
	if (rc)
		return rc;
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
	lc->netns_all = !o->netns_current;
	lc->handoff = &r->handoff;
	rc = pin_meta(r, 0);
	if (rc)
		return rc;
	if (loader_load(&d->bpf, lc, r->err, sizeof(r->err)) < 0) {
		log_err("%s", r->err);
		return EXIT_RUNTIME;
	}
	rc = pin_meta(r, 1);
	if (rc)
		return rc;
	/* Before evdns makes its sockets, so that they get our mark. */
	if (loader_attach_self(&d->bpf, r->proxy_cg, r->err, sizeof(r->err)) < 0) {
		log_err("%s", r->err);
		return EXIT_RUNTIME;
	}
	if (start_dns(r) < 0)
		return EXIT_USAGE;
	d->tuples_fd = bpf_map__fd(d->bpf.skel->maps.tuples);
	/* Before the pool binds: an earlier daemon's containers' ports are
	 * not this pool's to take over. */
	netns_forget(d);
	d->fast = fastpath_start(d);
	d->udp = udp_pool_new(d, o->udp_flows, r->err, sizeof(r->err));
	if (!d->udp) {
		log_err("%s", r->err);
		return EXIT_RUNTIME;
	}
	r->ev = events_start(d);
	if (!r->ev)
		return EXIT_RUNTIME;
	/* The namespaces of processes there already, served before capture
	 * begins. */
	if (!o->netns_current && !(d->nsctl = netns_start(d, r->err, sizeof(r->err)))) {
		log_err("%s", r->err);
		return EXIT_RUNTIME;
	}
	if (handoff_attach(&r->handoff, &d->bpf, d->target, r->proxy_cg, r->err,
			   sizeof(r->err)) < 0 ||
	    loader_attach(&d->bpf, d->target, r->proxy_cg, r->err, sizeof(r->err)) < 0) {
		log_err("%s", r->err);
		return EXIT_RUNTIME;
	}
	d->attached_at = time(NULL);
	r->watch = cgwatch_new(d->base, d->target, on_target, r, r->err, sizeof(r->err));
	if (!r->watch) {
		log_err("%s", r->err);
		return EXIT_RUNTIME;
	}
	r->ctl = control_new(d, control_dir(o->control_dir), r->err, sizeof(r->err));
	if (!r->ctl)
		log_warn("no control socket (sproxy-bpf status will not see this "
			 "daemon): %s", r->err);
	if (privs_drop(&(struct privs_plan){ .user = o->user, .no_drop = o->no_drop,
		.keep_why = r->cmd ? "run signals its command and removes its cgroup" :
			    o->pin_dir ? "--pin: links are pinned and unpinned on the BPF "
					 "filesystem after start" : NULL,
		.containers = !o->netns_current,
		.log_path = o->log_path, .store_path = o->fakeip_store, .target = d->target,
		.cg_mount = d->cg_mount, .own_cg = r->own_cg, .self_cg = r->self_cg }) < 0)
		return EXIT_RUNTIME;
	daemon_loops_start(d);
	notify_ready("capturing %s (pid %d); listening on %s%s%s", d->target,
		     (int)getpid(), lc->listen4 ? addr_str(lc->listen4, a, sizeof(a)) : "",
		     lc->listen4 && lc->listen6 ? " and " : "",
		     lc->listen6 ? addr_str(lc->listen6, b, sizeof(b)) : "");
	if (r->cmd && runcmd_start(r->cmd, d) < 0)
		return EXIT_RUNTIME;
	event_base_dispatch(d->base);
	return r->rc;
}

static int run(struct options *o, int argc, char **argv, struct runcmd *cmd)
{
	static struct run r;     /* large: not on the stack */
	int rc;

	memset(&r, 0, sizeof(r));
	r.d.opt = o;
	if (!(r.d.policy = policyset_new(o)))
		log_err("out of memory setting up the rules");
	r.d.argc = argc;
	r.d.argv = argv;
	r.cmd = cmd;
	rc = r.d.policy ? check_args(&r, o) : EXIT_RUNTIME;
	if (rc) {
		r.rc = rc;
		pin_leave(&r);
		policyset_unref(r.d.policy);
		return rc;
	}
	events_route_libevent_log();
	rc = serve(&r, o);
	r.rc = rc;
	teardown(&r);
	policyset_unref(r.d.policy);
	return rc;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	char **args;
	struct runcmd *cmd = NULL;
	int rc;

	/* Clients of a running daemon: their own command lines. */
	if (argc > 1 && strcmp(argv[1], "status") == 0)
		return status_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "top") == 0)
		return top_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "detach") == 0)
		return detach_main(argc - 1, argv + 1);
	/* For SIGHUP, as given: parsing may blank a password in argv. */
	args = cli_copy_args(argc, argv);
	cli_parse(argc, argv, &o);
	if (o.tproxy) {
		rc = tproxy_run(&o, args ? argc : 0, args);
		goto out;
	}
	/* run: the daemon's life around a command in a cgroup of its own. */
	if (o.run_argv && !(cmd = runcmd_prepare(&o, &rc)))
		goto out;
	rc = run(&o, args ? argc : 0, args, cmd);
	if (cmd)
		rc = runcmd_finish(cmd, rc);
out:
	cli_options_free(&o);
	cli_free_args(args);
	return rc;
}
