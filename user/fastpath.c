/* The kernel fast path, user space's side: see fastpath.h. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <event2/event.h>

#include "addr.h"
#include "daemon.h"
#include "dnsserver.h"
#include "fakeip.h"
#include "fastpath.h"
#include "log.h"
#include "policyset.h"
#include "rules_kernel.h"
#include "sproxy.skel.h"
#include "upstream.h"

/* A FakeIP name's real address is looked up again when the name is
 * answered after this long. */
#define FAKE_REFRESH_NS (60ull * 1000000000ull)
#define MAX_RESOLVING 256

struct resolving;

struct fastpath {
	struct daemon *d;
	struct event *sweep;
	struct resolving *resolving;    /* lookups under way */
	int n_resolving;
	int fd_conf, fd_ports, fd_cidr, fd_cidr_res, fd_uids, fd_comms;
	int fd_fakenet, fd_fake, fd_flows, fd_conns;
};

struct resolving {
	struct fastpath *fp;
	struct resolving *prev, *next;
	struct dns_resolving *req;
	struct sproxy_addr fake;        /* port 0 */
	uint64_t hash;
	char name[FAKEIP_NAME_MAX + 1];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++) {
		h ^= (uint8_t)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
		h *= 1099511628211ull;
	}
	return h;
}

/* Empties a hash or LPM map: always the first key, deleted. */
static void map_clear(int fd, size_t keylen)
{
	uint8_t next[64];

	while (keylen <= sizeof(next) && bpf_map_get_next_key(fd, NULL, next) == 0)
		if (bpf_map_delete_elem(fd, next) < 0)
			break;
}

/* Ports where tagging applies: every port but the TLS (and SSH) ones,
 * unless tagging is off. */
static int tagged_port(const struct options *o, uint32_t port)
{
	if (!o->tag)
		return 0;
	for (int i = 0; i < o->n_tls_ports; i++)
		if (port >= o->tls_ports[i].lo && port <= o->tls_ports[i].hi)
			return 0;
	return 1;
}

static int put(int fd, const void *k, const void *v, const char *what)
{
	if (bpf_map_update_elem(fd, k, v, BPF_ANY) == 0)
		return 0;
	log_err("kernel fast path: cannot fill the %s map: %s; everything goes "
		"through the proxy", what, strerror(errno));
	return -1;
}

/* Every port's entry, in one batch where the kernel can (65536 single
 * updates take tens of milliseconds at start). */
static int fill_ports(struct fastpath *fp, const struct rules_kernel *k)
{
	const struct options *o = fp->d->opt;
	struct sproxy_fp_port *v = calloc(65536, sizeof(*v));
	uint32_t *keys = calloc(65536, sizeof(*keys)), n = 65536;
	int rc = 0;

	if (!v || !keys) {
		free(v);
		free(keys);
		log_err("kernel fast path: out of memory; everything goes through the proxy");
		return -1;
	}
	for (uint32_t p = 0; p < 65536; p++) {
		keys[p] = p;
		v[p].hit = k->ports[p];
		v[p].tag = (uint32_t)tagged_port(o, p);
	}
	if (bpf_map_update_batch(fp->fd_ports, keys, v, &n, NULL) < 0)
		for (uint32_t p = 0; p < 65536 && rc == 0; p++)
			rc = put(fp->fd_ports, &p, &v[p], "port");
	free(v);
	free(keys);
	return rc;
}

/* The settings and the rules, into the maps; disabled on any failure. */
static int fill(struct fastpath *fp)
{
	const struct options *o = fp->d->opt;
	const struct upstream *u = policyset_default(fp->d->policy);
	struct sproxy_fp_conf conf = { 0 };
	struct rules_kernel k;
	uint32_t zero = 0;
	int rc = -1;

	if (put(fp->fd_conf, &zero, &conf, "settings") < 0)
		return -1;          /* disabled while the maps change */
	if (o->fast_path_off)
		return 0;
	if (rules_kernel_build(fp->d->policy->rules, &k) < 0) {
		log_err("kernel fast path: out of memory compiling the rules; "
			"everything goes through the proxy");
		return -1;
	}
	map_clear(fp->fd_cidr, sizeof(struct sproxy_bypass_key));
	map_clear(fp->fd_cidr_res, sizeof(struct sproxy_bypass_key));
	map_clear(fp->fd_uids, sizeof(uint32_t));
	map_clear(fp->fd_comms, SPROXY_COMM_LEN);
	map_clear(fp->fd_fake, sizeof(struct sproxy_addr));
	if (fill_ports(fp, &k) < 0)
		goto out;
	for (size_t i = 0; i < k.n_cidr_all; i++)
		if (put(fp->fd_cidr, &k.cidr_all[i].key, &k.cidr_all[i].hit, "IP-CIDR") < 0)
			goto out;
	for (size_t i = 0; i < k.n_cidr_res; i++)
		if (put(fp->fd_cidr_res, &k.cidr_res[i].key, &k.cidr_res[i].hit, "IP-CIDR") < 0)
			goto out;
	for (size_t i = 0; i < k.n_uid; i++)
		if (put(fp->fd_uids, &k.uid[i].uid, &k.uid[i].hit, "UID") < 0)
			goto out;
	for (size_t i = 0; i < k.n_comm; i++)
		if (put(fp->fd_comms, k.comm[i].comm, &k.comm[i].hit, "PROCESS-NAME") < 0)
			goto out;
	conf.enabled = 1;
	/* No rule matched: the default route; an upstream is the proxy's. */
	conf.default_verdict = u && u->kind != UPSTREAM_DIRECT ? SPROXY_FP_PROXY
							       : SPROXY_FP_DIRECT;
	conf.barrier = k.barrier;
	conf.barrier_fake = k.barrier_fake;
	conf.net[0] = k.net[0];
	conf.net[1] = k.net[1];
	conf.match = k.match;
	rc = put(fp->fd_conf, &zero, &conf, "settings");
out:
	rules_kernel_free(&k);
	return rc;
}

static void fakenet(struct fastpath *fp)
{
	const struct options *o = fp->d->opt;
	const char *r[2] = {
		o->fakeip_range[0] ? o->fakeip_range[0] : FAKEIP_DEFAULT_V4,
		o->fakeip_range[1] ? o->fakeip_range[1] : FAKEIP_DEFAULT_V6,
	};
	struct sproxy_bypass_key key;
	uint32_t one = 1;
	uint16_t port;
	char err[200];

	if (o->disable_fakeip)
		return;
	for (int i = 0; i < 2; i++) {
		if (cidr_parse(r[i], &key, &port, err, sizeof(err)) < 0) {
			log_warn("kernel fast path: FakeIP range %s: %s", r[i], err);
			continue;
		}
		put(fp->fd_fakenet, &key, &one, "FakeIP range");
	}
}

static void on_resolved(int err, const char *errmsg, const struct sockaddr *addr,
			socklen_t addrlen, void *arg)
{
	struct resolving *rs = arg;
	struct fastpath *fp = rs->fp;
	struct sproxy_fp_fake v = { 0 };
	struct sockaddr_storage ss;
	const char *now_name;

	(void)addrlen;
	fp->n_resolving--;
	if (rs->prev)
		rs->prev->next = rs->next;
	else
		fp->resolving = rs->next;
	if (rs->next)
		rs->next->prev = rs->prev;
	if (err) {
		log_debug("kernel fast path: %s (its connections go through the proxy)",
			  errmsg);
		goto out;
	}
	/* The address may have gone to another name meanwhile. */
	addr_from_sproxy(&rs->fake, &ss);
	now_name = dns_server_fake_name(fp->d->dns, (struct sockaddr *)&ss, NULL);
	if (!now_name || strcmp(now_name, rs->name) != 0)
		goto out;
	addr_to_sproxy(addr, &v.real);
	v.real.port = 0;
	v.name = rules_kernel_name(fp->d->policy->rules, rs->name);
	v.name_hash = rs->hash;
	v.filled_ns = now_ns();
	if (bpf_map_update_elem(fp->fd_fake, &rs->fake, &v, BPF_ANY) < 0)
		log_debug("kernel fast path: FakeIP map: %s", strerror(errno));
out:
	free(rs);
}

/* A fake answer was given for name: its real address, in the background,
 * unless known and fresh.  An address now given to another name loses
 * its old real address at once. */
static void on_fake(void *arg, const char *name, const struct sockaddr *fake)
{
	struct fastpath *fp = arg;
	struct sproxy_fp_fake v;
	struct resolving *rs;
	struct sproxy_addr key;
	uint64_t h = name_hash(name);

	addr_to_sproxy(fake, &key);
	key.port = 0;
	key.pad = 0;
	if (bpf_map_lookup_elem(fp->fd_fake, &key, &v) == 0) {
		if (v.name_hash == h && now_ns() - v.filled_ns < FAKE_REFRESH_NS)
			return;
		if (v.name_hash != h)
			bpf_map_delete_elem(fp->fd_fake, &key);
	}
	if (fp->n_resolving >= MAX_RESOLVING || strlen(name) > FAKEIP_NAME_MAX)
		return;             /* the proxy resolves it when it connects */
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return;
	rs->fp = fp;
	rs->fake = key;
	rs->hash = h;
	strcpy(rs->name, name);
	rs->req = dns_server_resolve(fp->d->dns, name, fake->sa_family, on_resolved, rs);
	if (!rs->req) {
		free(rs);
		return;
	}
	rs->next = fp->resolving;
	if (rs->next)
		rs->next->prev = rs;
	fp->resolving = rs;
	fp->n_resolving++;
}

static const char *result_str(uint32_t r, const char **err)
{
	*err = NULL;
	switch (r) {
	case SPROXY_FPR_OK:
		return "ok";
	case SPROXY_FPR_FAILED:
		*err = "connection failed (kernel path: refused, unreachable or timed out)";
		return "error";
	case SPROXY_FPR_REJECTED:
		*err = "REJECT rule (decided in the kernel)";
		return "rejected";
	case SPROXY_FPR_OPEN:
		*err = "open when the daemon stopped; it goes on, unseen";
		return "shutdown";
	default:
		*err = "connection reset";
		return "error";
	}
}

static void log_line(struct fastpath *fp, const char *proto, struct sproxy_proc *proc,
		     const struct sproxy_addr *src, const struct sproxy_addr *dst,
		     uint64_t up, uint64_t down, double duration, uint32_t result,
		     uint32_t rule)
{
	struct sockaddr_storage s, t;
	const char *err, *host = NULL;
	char name[FAKEIP_NAME_MAX + 1];
	struct conn_log c = {
		.proto = proto,
		.proc = proc,
		.cgroup = daemon_cgroup_name(fp->d, proc->cgroup_id),
		.up = up,
		.down = down,
		.duration = duration,
		.path = "kernel",
	};

	daemon_process_comm(proc);
	c.result = result_str(result, &err);
	/* The hooks decide DIRECT or REJECT only: anything else went to the
	 * proxy, which logs it itself. */
	c.rule = (int)rule;
	c.route = result == SPROXY_FPR_REJECTED ? "REJECT" : "DIRECT";
	c.error = err;
	if (src && src->port) {
		addr_from_sproxy(src, &s);
		c.src = (struct sockaddr *)&s;
	}
	addr_from_sproxy(dst, &t);
	c.dst = (struct sockaddr *)&t;
	if (fp->d->dns)
		host = dns_server_fake_name(fp->d->dns, c.dst, NULL);
	if (host) {
		snprintf(name, sizeof(name), "%s", host);
		c.host = name;
	}
	connlog_write(&c);
}

void fastpath_event(struct fastpath *fp, const void *data, size_t size)
{
	struct sproxy_fp_event e;

	if (!fp || size < sizeof(e))
		return;
	memcpy(&e, data, sizeof(e));
	log_line(fp, e.proto == IPPROTO_UDP ? "udp" : "tcp", &e.proc, &e.src, &e.dst,
		 e.up, e.down, (double)e.duration_ns / 1e9, e.result, e.rule);
}

/* UDP flows on the kernel path end when idle for --udp-timeout (all = 1:
 * every one, at exit).  The hooks see no send on a connected socket, so
 * those end by the same clock. */
static void sweep_flows(struct fastpath *fp, int all)
{
	struct sproxy_flow_key k, next;
	struct sproxy_fp_flow f;
	uint64_t now = now_ns(), idle = (uint64_t)fp->d->opt->udp_timeout * 1000000000ull;
	int first = 1;

	while (bpf_map_get_next_key(fp->fd_flows, first ? NULL : &k, &next) == 0) {
		first = 0;
		k = next;
		if (bpf_map_lookup_elem(fp->fd_flows, &k, &f) < 0)
			continue;
		if (!all && now - f.last_ns < idle)
			continue;
		if (f.flags & SPROXY_FPF_REJECTED) {    /* logged when refused */
			bpf_map_delete_elem(fp->fd_flows, &k);
			continue;
		}
		log_line(fp, "udp", &f.proc, NULL, &k.dst, 0, 0,
			 (double)(f.last_ns - f.first_ns) / 1e9, SPROXY_FPR_OK, f.rule);
		bpf_map_delete_elem(fp->fd_flows, &k);
	}
}

size_t fastpath_each_open(struct fastpath *fp, size_t max, fastpath_open_fn fn, void *arg)
{
	uint64_t k, next;
	struct sproxy_fp_conn c;
	size_t n = 0;
	int first = 1;

	while (fp && n < max &&
	       bpf_map_get_next_key(fp->fd_conns, first ? NULL : &k, &next) == 0) {
		first = 0;
		k = next;
		if (bpf_map_lookup_elem(fp->fd_conns, &k, &c) < 0 ||
		    !(c.flags & SPROXY_FPC_CONNECTING))
			continue;
		fn(arg, &c);
		n++;
	}
	return n;
}

struct open_at_exit {
	struct fastpath *fp;
	uint64_t now;
};

static void log_one_open(void *arg, const struct sproxy_fp_conn *c)
{
	struct open_at_exit *x = arg;
	struct sproxy_proc p = c->proc;

	log_line(x->fp, "tcp", &p, NULL, &c->dst, 0, 0,
		 (double)(x->now - c->start_ns) / 1e9, SPROXY_FPR_OPEN, c->rule);
}

/* Kernel-path connections still open when the daemon stops: they go on
 * (nothing stands between them and the server) but leave the log now,
 * with result=shutdown and no byte counts (only sockops could read them). */
static void log_open(struct fastpath *fp)
{
	struct open_at_exit x = { fp, now_ns() };

	fastpath_each_open(fp, SIZE_MAX, log_one_open, &x);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sweep_flows(arg, 0);
}

struct fastpath *fastpath_start(struct daemon *d)
{
	struct sproxy_bpf *s = d->bpf.skel;
	struct fastpath *fp = calloc(1, sizeof(*fp));
	struct timeval tv = { .tv_sec = 1 };

	if (!fp) {
		log_err("kernel fast path: out of memory; everything goes through the proxy");
		return NULL;
	}
	fp->d = d;
	fp->fd_conf = bpf_map__fd(s->maps.fp_conf);
	fp->fd_ports = bpf_map__fd(s->maps.fp_ports);
	fp->fd_cidr = bpf_map__fd(s->maps.fp_cidr);
	fp->fd_cidr_res = bpf_map__fd(s->maps.fp_cidr_res);
	fp->fd_uids = bpf_map__fd(s->maps.fp_uids);
	fp->fd_comms = bpf_map__fd(s->maps.fp_comms);
	fp->fd_fakenet = bpf_map__fd(s->maps.fp_fakenet);
	fp->fd_fake = bpf_map__fd(s->maps.fp_fake);
	fp->fd_flows = bpf_map__fd(s->maps.fp_flows);
	fp->fd_conns = bpf_map__fd(s->maps.fp_conns);
	if (fill(fp) < 0)
		return fp;          /* disabled; the log lines still work */
	if (d->opt->fast_path_off)
		return fp;
	fakenet(fp);
	if (d->dns)
		dns_server_on_fake(d->dns, on_fake, fp);
	fp->sweep = event_new(d->base, -1, EV_PERSIST, on_sweep, fp);
	if (!fp->sweep || event_add(fp->sweep, &tv) < 0)
		log_warn("kernel fast path: no timer for idle UDP flows: they are "
			 "logged at exit only");
	return fp;
}

void fastpath_reload(struct fastpath *fp)
{
	if (fp)
		fill(fp);
}

void fastpath_free(struct fastpath *fp)
{
	if (!fp)
		return;
	if (fp->d->dns)
		dns_server_on_fake(fp->d->dns, NULL, NULL);
	/* Pinned programs stay and a successor reports what is open. */
	if (!fp->d->bpf.pin) {
		log_open(fp);
		sweep_flows(fp, 1);
	}
	while (fp->resolving) {
		struct resolving *rs = fp->resolving;

		fp->resolving = rs->next;
		dns_resolving_cancel(rs->req);
		free(rs);
	}
	if (fp->sweep)
		event_free(fp->sweep);
	free(fp);
}
