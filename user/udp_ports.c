#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "daemon.h"
#include "log.h"
#include "sproxy.h"
#include "sproxy.skel.h"
#include "udp_ports.h"

static int ports_fd(struct daemon *d, int family)
{
	struct sproxy_bpf *s = d->bpf.skel;

	return bpf_map__fd(family == AF_INET ? s->maps.ports4 : s->maps.ports6);
}

static uint8_t port_owner[2][65536];
static int owner_q[SPROXY_NETNS_MAX + 2][2];

int udp_ports_claim(int family, uint32_t port, int owner)
{
	uint8_t *o = &port_owner[family == AF_INET6][port & 0xffff];

	if (*o && *o != owner)
		return -1;
	*o = (uint8_t)owner;
	return 0;
}

void udp_ports_unclaim(int family, uint32_t port)
{
	port_owner[family == AF_INET6][port & 0xffff] = 0;
}

void udp_ports_queues(int owner, int q4, int q6)
{
	if (owner <= UDP_OWNER_SELF || owner >= SPROXY_NETNS_MAX + 2)
		return;
	owner_q[owner][0] = q4;
	owner_q[owner][1] = q6;
}

int udp_port_push(struct daemon *d, int family, uint32_t port, int reserve)
{
	struct sproxy_bpf *s = d->bpf.skel;
	int owner = port_owner[family == AF_INET6][port & 0xffff];
	struct bpf_map *m;

	/* A served namespace's port: back to that namespace's queue. */
	if (owner > UDP_OWNER_SELF) {
		int q = owner_q[owner][family == AF_INET6];

		return q < 0 || bpf_map_update_elem(q, NULL, &port, BPF_ANY) ? -errno : 0;
	}

	if (reserve)
		m = family == AF_INET ? s->maps.pool4dns : s->maps.pool6dns;
	else
		m = family == AF_INET ? s->maps.pool4 : s->maps.pool6;
	return bpf_map_update_elem(bpf_map__fd(m), NULL, &port, BPF_ANY) ? -errno : 0;
}

static void proc_uncount(struct daemon *d, uint32_t tgid)
{
	int fd = bpf_map__fd(d->bpf.skel->maps.udp_procs);
	uint32_t n;

	if (bpf_map_lookup_elem(fd, &tgid, &n) < 0)
		return;
	if (n <= 1) {
		bpf_map_delete_elem(fd, &tgid);
	} else {
		n--;
		bpf_map_update_elem(fd, &tgid, &n, BPF_EXIST);
	}
}

void udp_port_free(struct daemon *d, int family, uint32_t port,
		   const struct sproxy_flow *rec)
{
	struct sproxy_flow_key k;

	memset(&k, 0, sizeof(k));
	k.cookie = rec->cookie;
	k.dst = rec->dst;
	bpf_map_delete_elem(bpf_map__fd(d->bpf.skel->maps.flows), &k);
	if (bpf_map_delete_elem(ports_fd(d, family), &port) < 0)
		return;       /* freed already: pushing it again would double it */
	proc_uncount(d, rec->proc.tgid);
	if (udp_port_push(d, family, port, !!(rec->flags & SPROXY_FLOW_RESERVE)) < 0)
		log_err("cannot return UDP pool port %u: %s", port, strerror(errno));
}

int udp_port_record(struct daemon *d, int family, uint32_t port,
		    struct sproxy_flow *rec)
{
	return bpf_map_lookup_elem(ports_fd(d, family), &port, rec) < 0 ? -1 : 0;
}

struct count {
	uint32_t tgid, n;
};

static int by_tgid(const void *a, const void *b)
{
	const struct count *x = a, *y = b;

	return x->tgid < y->tgid ? -1 : x->tgid > y->tgid;
}

void udp_procs_recount(struct daemon *d)
{
	int pfd = bpf_map__fd(d->bpf.skel->maps.udp_procs);
	size_t n = 0, cap = 2 * (size_t)d->opt->udp_flows, i;
	struct count *c = calloc(cap ? cap : 1, sizeof(*c)), *hit;
	uint32_t key, next, tgid, gone[256];
	size_t n_gone = 0;
	void *prev;
	int fam;

	if (!c)
		return;
	for (fam = 0; fam < 2; fam++) {
		int fd = ports_fd(d, fam ? AF_INET6 : AF_INET);

		for (prev = NULL; n < cap && bpf_map_get_next_key(fd, prev, &next) == 0; prev = &key) {
			struct sproxy_flow rec;

			key = next;
			if (bpf_map_lookup_elem(fd, &key, &rec) == 0)
				c[n++] = (struct count){ rec.proc.tgid, 1 };
		}
	}
	qsort(c, n, sizeof(*c), by_tgid);
	for (i = 1, key = 0; i < n; i++) {     /* merge runs of one tgid */
		if (c[i].tgid == c[key].tgid) {
			c[key].n++;
		} else {
			c[++key] = c[i];
		}
	}
	n = n ? key + 1 : 0;
	/* Deleting while walking would restart the walk: collect first. */
	for (prev = NULL; n_gone < 256 && bpf_map_get_next_key(pfd, prev, &tgid) == 0;
	     prev = &key) {
		struct count k = { tgid, 0 };

		key = tgid;
		hit = bsearch(&k, c, n, sizeof(*c), by_tgid);
		if (!hit)
			gone[n_gone++] = tgid;
	}
	for (i = 0; i < n_gone; i++)
		bpf_map_delete_elem(pfd, &gone[i]);
	for (i = 0; i < n; i++)
		bpf_map_update_elem(pfd, &c[i].tgid, &c[i].n, BPF_ANY);
	free(c);
}
