/* sproxy-bpf: the command line and the daemon's life: attach, serve,
 * detach. */
#include <errno.h>
#include <libgen.h>
#include <getopt.h>
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
#include "daemon.h"
#include "dnsserver.h"
#include "log.h"
#include "proxy.h"
#include "sproxy.skel.h"
#include "udp.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static const char usage_text[] =
"Usage: sproxy-bpf attach CGROUP [OPTION]...\n"
"       sproxy-bpf --help | --version\n"
"\n"
"Sends every TCP connection and UDP datagram of the processes in CGROUP (a\n"
"cgroup v2 directory: an absolute path, or one relative to the cgroup v2\n"
"mount) through this proxy, which relays it to its original destination,\n"
"appends the process to HTTP User-Agents, answers DNS with FakeIP addresses,\n"
"and logs one line per connection with the process that made it.\n"
"Runs in the foreground until SIGINT or SIGTERM; prints a line with 'ready'\n"
"to stderr (and READY=1 to $NOTIFY_SOCKET) once traffic is captured.\n"
"Captures the cgroup's processes in the daemon's own network namespace.\n"
"\n"
"Options:\n"
"  -l, --listen ADDR:PORT     TCP listener; repeatable (default 127.0.0.1:3333\n"
"                             and [::1]:3333)\n"
"  -b, --bypass CIDR[:PORT]   send this destination direct; repeatable\n"
"                             (e.g. 10.0.0.0/8, 10.1.2.3:443, [2001:db8::/32]:80).\n"
"                             Loopback, link-local, multicast and broadcast always\n"
"                             go direct, except DNS (port 53)\n"
"      --log FILE             connection log, appended (default: stderr)\n"
"      --json                 connection log as JSON lines\n"
"  -v, --verbose              debug messages (libbpf, dropped datagrams, DNS)\n"
"      --all                  allow CGROUP to be the cgroup v2 root: captures\n"
"                             every process of the machine\n"
"      --map-size N           entries of each BPF record map (default 65536)\n"
"      --udp-flows N          concurrent UDP flows per address family (default 1024)\n"
"      --udp-timeout SEC      idle UDP flows end after SEC seconds (default 60)\n"
"      --connect-timeout SEC  outbound connect timeout (default 10)\n"
"      --relay MODE           splice (default: bulk bytes that need no rewriting\n"
"                             stay in the kernel) or copy (always through a buffer)\n"
"      --mark N               SO_MARK of the daemon's own sockets, which are never\n"
"                             captured (default 0x5350)\n"
"DNS:\n"
"      --resolver ADDR[:PORT] real resolver; repeatable (default: the nameservers\n"
"                             of /etc/resolv.conf)\n"
"      --disable-fakeip       answer every query with the real answer\n"
"      --fakeip-range CIDR    FakeIP pool; once for IPv4, once for IPv6 (default\n"
"                             198.18.0.0/15 and fd73:7072:6f78:7900::/64)\n"
"      --fakeip-store FILE    keep the name <-> address mapping across restarts\n"
"      --fakeip-exclude SUFFIX  names that always get real answers; repeatable\n"
"      --fakeip-ttl SEC       TTL of FakeIP answers (default 1)\n"
"  -h, --help                 this text\n"
"  -V, --version              the version\n"
"\n"
"Exit status: 0 stopped by SIGINT/SIGTERM (everything detached); 1 a runtime\n"
"failure (BPF load or attach, listening); 2 a usage error or a refused CGROUP.\n";

static void usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "sproxy-bpf: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'sproxy-bpf --help'.\n");
	exit(EXIT_USAGE);
}

static unsigned long number(const char *s, const char *opt, unsigned long min,
			    unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || !*s || *end || v < min || v > max) {
		fprintf(stderr, "sproxy-bpf: %s wants a number from %lu to %lu, not '%s'\n",
			opt, min, max, s);
		exit(EXIT_USAGE);
	}
	return v;
}

static void parse(int argc, char **argv, struct options *o)
{
	enum { O_LOG = 256, O_JSON, O_ALL, O_MAPSIZE, O_UDPFLOWS, O_UDPTIMEOUT,
	       O_CONNTIMEOUT, O_RELAY, O_MARK, O_RESOLVER, O_NOFAKE, O_FRANGE,
	       O_FSTORE, O_FEXCL, O_FTTL };
	static const struct option lo[] = {
		{ "listen", required_argument, 0, 'l' },
		{ "bypass", required_argument, 0, 'b' },
		{ "log", required_argument, 0, O_LOG },
		{ "json", no_argument, 0, O_JSON },
		{ "verbose", no_argument, 0, 'v' },
		{ "all", no_argument, 0, O_ALL },
		{ "map-size", required_argument, 0, O_MAPSIZE },
		{ "udp-flows", required_argument, 0, O_UDPFLOWS },
		{ "udp-timeout", required_argument, 0, O_UDPTIMEOUT },
		{ "connect-timeout", required_argument, 0, O_CONNTIMEOUT },
		{ "relay", required_argument, 0, O_RELAY },
		{ "mark", required_argument, 0, O_MARK },
		{ "resolver", required_argument, 0, O_RESOLVER },
		{ "disable-fakeip", no_argument, 0, O_NOFAKE },
		{ "fakeip-range", required_argument, 0, O_FRANGE },
		{ "fakeip-store", required_argument, 0, O_FSTORE },
		{ "fakeip-exclude", required_argument, 0, O_FEXCL },
		{ "fakeip-ttl", required_argument, 0, O_FTTL },
		{ "help", no_argument, 0, 'h' },
		{ "version", no_argument, 0, 'V' },
		{ 0, 0, 0, 0 },
	};
	char err[256];
	int c;

	o->udp_timeout = 60;
	o->connect_timeout = 10;
	o->map_size = 65536;
	o->udp_flows = 1024;
	o->mark = SPROXY_MARK_DEFAULT;
	o->fakeip_ttl = 1;
	while ((c = getopt_long(argc, argv, "l:b:vhV", lo, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (o->n_listen == 8)
				usage_error("at most 8 --listen%s", "");
			if (addr_parse(optarg, 0, &o->listen[o->n_listen], err, sizeof(err)) < 0)
				usage_error("--listen: %s", err);
			o->n_listen++;
			break;
		case 'b': {
			struct bypass_entry *e = &o->bypass[o->n_bypass];

			if (o->n_bypass == 256)
				usage_error("at most 256 --bypass%s", "");
			if (cidr_parse(optarg, &e->key, &e->port, err, sizeof(err)) < 0)
				usage_error("--bypass: %s", err);
			o->n_bypass++;
			break;
		}
		case O_LOG: o->log_path = optarg; break;
		case O_JSON: o->json = 1; break;
		case 'v': o->verbose = 1; break;
		case O_ALL: o->allow_root = 1; break;
		case O_MAPSIZE:
			o->map_size = (uint32_t)number(optarg, "--map-size", 64, 1u << 24);
			break;
		case O_UDPFLOWS:
			o->udp_flows = (uint32_t)number(optarg, "--udp-flows", 1, 16384);
			break;
		case O_UDPTIMEOUT:
			o->udp_timeout = (unsigned)number(optarg, "--udp-timeout", 1, 86400);
			break;
		case O_CONNTIMEOUT:
			o->connect_timeout = (unsigned)number(optarg, "--connect-timeout", 1, 600);
			break;
		case O_RELAY:
			if (strcmp(optarg, "copy") == 0)
				o->relay_copy = 1;
			else if (strcmp(optarg, "splice") != 0)
				usage_error("--relay is 'splice' or 'copy', not '%s'", optarg);
			break;
		case O_MARK:
			o->mark = (uint32_t)number(optarg, "--mark", 1, 0xffffffffu);
			break;
		case O_RESOLVER:
			if (o->n_resolvers == 8)
				usage_error("at most 8 --resolver%s", "");
			if (addr_parse(optarg, 53, &o->resolvers[o->n_resolvers], err,
				       sizeof(err)) < 0)
				usage_error("--resolver: %s", err);
			o->n_resolvers++;
			break;
		case O_NOFAKE: o->disable_fakeip = 1; break;
		case O_FRANGE:
			o->fakeip_range[strchr(optarg, ':') ? 1 : 0] = optarg;
			break;
		case O_FSTORE: o->fakeip_store = optarg; break;
		case O_FEXCL:
			if (o->n_fakeip_exclude == 64)
				usage_error("at most 64 --fakeip-exclude%s", "");
			o->fakeip_exclude[o->n_fakeip_exclude++] = optarg;
			break;
		case O_FTTL:
			o->fakeip_ttl = (unsigned)number(optarg, "--fakeip-ttl", 0, 86400);
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case 'V':
			printf("sproxy-bpf %s (libbpf %s)\n", SPROXY_VERSION, libbpf_version_string());
			exit(0);
		default:
			fprintf(stderr, "Try 'sproxy-bpf --help'.\n");
			exit(EXIT_USAGE);
		}
	}
}

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
		 "no record %llu; UDP pool dry %llu; map full %llu",
		 (unsigned long long)st[SPROXY_STAT_TCP_REDIRECTED],
		 (unsigned long long)st[SPROXY_STAT_UDP_REDIRECTED],
		 (unsigned long long)st[SPROXY_STAT_DNS_REDIRECTED],
		 (unsigned long long)st[SPROXY_STAT_BYPASSED],
		 (unsigned long long)st[SPROXY_STAT_ORIGDST_MISS],
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

	if (argc > 1 && argv[1][0] == '-') {
		parse(argc, argv, &o);
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (argc < 2) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "attach") != 0)
		usage_error("unknown command '%s'", argv[1]);
	optind = 2;
	parse(argc, argv, &o);
	if (optind != argc - 1) {
		if (optind >= argc)
			usage_error("attach needs a CGROUP%s", "");
		usage_error("unexpected argument '%s'", argv[optind + 1]);
	}
	o.cgroup = argv[optind];
	return run(&o);
}
