/* The life of a TPROXY daemon: listen transparently, serve, stop. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/event.h>

#include "addr.h"
#include "cli.h"
#include "daemon.h"
#include "dnsserver.h"
#include "fakeip.h"
#include "log.h"
#include "notify.h"
#include "preflight.h"
#include "privhelper.h"
#include "privs.h"
#include "proxy.h"
#include "reload.h"
#include "resolvconf.h"
#include "policyset.h"
#include "rules.h"
#include "sysenv.h"
#include "tproxy.h"
#include "tproxyudp.h"

struct trun {
	struct daemon d;
	struct proxy_listener *tcp[8];
	struct tproxy_udp *udp[8];
	int n_tcp, n_udp;
	struct event *sigs[3];
	char err[512];
};

static int start_dns(struct trun *r)
{
	if (daemon_dns_new(&r->d, r->err, sizeof(r->err)) < 0) {
		log_err("DNS: %s", r->err);
		return -1;
	}
	return 0;
}

static int is_wildcard6(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 &&
	       IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* One address: a TCP and a UDP socket.  An IPv6 wildcard takes IPv4 too,
 * unless an IPv4 address is given besides (it would hold the port). */
static int open_one(struct trun *r, struct sockaddr_storage *addr, int dual)
{
	struct daemon *d = &r->d;
	struct proxy_listener *pl;
	struct tproxy_udp *u;
	int fd, one = 1;

	fd = tsock_open(d, SOCK_STREAM, addr, dual, r->err, sizeof(r->err));
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));   /* inherited */
	if (listen(fd, 4096) < 0) {
		snprintf(r->err, sizeof(r->err), "TCP listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	pl = proxy_listen_transparent(d, fd, addr, r->err, sizeof(r->err));
	if (!pl)
		return -1;
	r->tcp[r->n_tcp++] = pl;
	fd = tsock_open(d, SOCK_DGRAM, addr, dual, r->err, sizeof(r->err));
	if (fd < 0)
		return -1;
	u = tproxy_udp_new(d, fd, addr, r->err, sizeof(r->err));
	if (!u)
		return -1;
	r->udp[r->n_udp++] = u;
	return 0;
}

static int open_listeners(struct trun *r, struct options *o)
{
	int has4 = 0;

	if (!o->n_listen) {
		addr_parse(TPROXY_DEFAULT_LISTEN, 0, &o->listen[0], NULL, 0);
		o->n_listen = 1;
	}
	for (int i = 0; i < o->n_listen; i++)
		has4 |= o->listen[i].ss_family == AF_INET;
	for (int i = 0; i < o->n_listen; i++) {
		struct sockaddr_storage *a = &o->listen[i];

		if (open_one(r, a, is_wildcard6(a) && !has4) == 0)
			continue;
		/* The default on a host without IPv6: IPv4 alone, said so. */
		if (o->n_listen == 1 && is_wildcard6(a) && errno == EAFNOSUPPORT) {
			uint16_t port = addr_port((struct sockaddr *)a);

			log_warn("%s; listening on IPv4 only", r->err);
			memset(a, 0, sizeof(*a));
			a->ss_family = AF_INET;
			((struct sockaddr_in *)a)->sin_port = htons(port);
			if (open_one(r, a, 0) == 0)
				continue;
		}
		log_err("%s", r->err);
		return errno == EADDRNOTAVAIL ? EXIT_USAGE : EXIT_RUNTIME;
	}
	return 0;
}

/* As attach: the log reopened, the rules and upstreams read again. */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	connlog_reopen();
	reload_request(arg);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	log_info("%s: stopping", strsignal((int)sig));
	event_base_loopbreak(arg);
}

static int start_signals(struct trun *r)
{
	struct event_base *b = r->d.base;

	r->sigs[0] = evsignal_new(b, SIGINT, on_stop, b);
	r->sigs[1] = evsignal_new(b, SIGTERM, on_stop, b);
	r->sigs[2] = evsignal_new(b, SIGHUP, on_hup, &r->d);
	for (int i = 0; i < 3; i++)
		if (!r->sigs[i] || event_add(r->sigs[i], NULL) < 0) {
			log_err("cannot handle signals: %s", strerror(errno));
			return -1;
		}
	return 0;
}

static void teardown(struct trun *r)
{
	char err[512];

	for (int i = 0; i < r->n_udp; i++)
		tproxy_udp_free(r->udp[i]);
	for (int i = 0; i < r->n_tcp; i++)
		proxy_listener_free(r->tcp[i]);
	reload_stop(&r->d);
	daemon_loops_stop(&r->d);
	for (int i = 0; i < 3; i++)
		if (r->sigs[i])
			event_free(r->sigs[i]);
	if (r->d.dns)
		dns_server_free(r->d.dns);
	if (privhelper_finish(err, sizeof(err)) < 0)   /* after the store's writing */
		log_warn("%s", err);
	if (r->d.base) {
		event_base_loop(r->d.base, EVLOOP_NONBLOCK);  /* evdns's cancellations */
		event_base_free(r->d.base);
	}
	connlog_close();
}

static int check_args(struct options *o)
{
	slog_level = o->verbose ? SLOG_DEBUG : SLOG_INFO;
	return preflight_serving(o) < 0 ? EXIT_USAGE : 0;
}

static int serve(struct trun *r, struct options *o)
{
	struct daemon *d = &r->d;
	char list[512] = "", a[ADDR_STRLEN];
	int rc;

	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sysenv_raise_nofile();
	d->base = event_base_new();
	if (!d->base) {
		log_err("cannot create the event loop");
		return EXIT_RUNTIME;
	}
	d->netns = sysenv_netns_cookie();
	d->tuples_fd = -1;
	if (!o->n_resolvers)
		resolvconf_read("/etc/resolv.conf", o);
	if (start_dns(r) < 0)
		return EXIT_USAGE;
	rc = open_listeners(r, o);
	if (rc)
		return rc;
	if (start_signals(r) < 0)
		return EXIT_RUNTIME;
	for (int i = 0; i < o->n_listen; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? " and " : "",
			 addr_str((struct sockaddr *)&o->listen[i], a, sizeof(a)));
	if (privs_drop(&(struct privs_plan){ .user = o->user, .no_drop = o->no_drop,
		.bind_low = 1, .log_path = o->log_path, .store_path = o->fakeip_store,
		.cg_mount = "", .own_cg = "", .self_cg = "" }) < 0)
		return EXIT_RUNTIME;
	daemon_loops_start(d);
	notify_ready("TPROXY on %s, TCP and UDP (pid %d; own packets marked 0x%x)", list,
		     (int)getpid(), o->mark);
	event_base_dispatch(d->base);
	return 0;
}

int tproxy_run(struct options *o, int argc, char **argv)
{
	static struct trun r;
	int rc;

	memset(&r, 0, sizeof(r));
	r.d.opt = o;
	r.d.argc = argc;
	r.d.argv = argv;
	rc = check_args(o);
	if (rc)
		return rc;
	r.d.policy = policyset_new(o);
	if (!r.d.policy) {
		log_err("out of memory setting up the rules");
		return EXIT_RUNTIME;
	}
	rc = serve(&r, o);
	teardown(&r);
	policyset_unref(r.d.policy);
	return rc;
}
