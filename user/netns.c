/* Other network namespaces: finding them (the processes below the captured
 * cgroup, every second, and the BPF side's reports), serving them (a
 * listener per family and a UDP pool made inside each), releasing them
 * (no process of the cgroup left in the namespace). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <event2/event.h>

#include "addr.h"
#include "daemon.h"
#include "log.h"
#include "netns.h"
#include "proxy.h"
#include "sockdiag.h"
#include "sproxy.h"
#include "sproxy.skel.h"
#include "sysenv.h"
#include "udp.h"
#include "udp_int.h"
#include "udp_ports.h"

#define SCAN_DEPTH 32          /* cgroup levels below the target */
#define SCAN_PROCS 65536       /* processes looked at per scan */

struct served {
	struct served *next;
	uint64_t cookie;
	dev_t dev;
	ino_t ino;
	int nsfd;
	int owner;                 /* its pool's owner index (udp_ports.h) */
	int q4, q6;                /* free-port queues, in netns_pool4|6 */
	uint16_t port[2];          /* the listeners' (network order; 0: none) */
	int failed;                /* could not be served: not tried again */
	int seen;                  /* a process of the cgroup is in it */
	struct proxy_listener *lis[2];
	struct udp_pool *udp;
};

/* A namespace seen by a scan, not served yet. */
struct seen_ns {
	dev_t dev;
	ino_t ino;
};

#define SEEN_MAX 256

struct netns_ctl {
	struct daemon *d;
	/* Namespaces seen by the last scan and by this one: a periodic scan
	 * serves a namespace seen twice in a row, so that a process passing
	 * through one (joining the cgroup, then entering its container's
	 * namespace) does not get it served. */
	struct seen_ns last[SEEN_MAX], now[SEEN_MAX];
	size_t n_last, n_now;
	int settle;                /* 1: periodic scans (debounced) */
	int home;                  /* the daemon's own namespace */
	dev_t home_dev;
	ino_t home_ino;
	struct event *tick;
	struct served *list;
	size_t n;
	unsigned char owners[SPROXY_NETNS_MAX + 2];
	time_t last_full_log;
};

/* Back to the daemon's namespace.  A thread left in a container's would
 * make the daemon's connections out from there: never go on. */
static void go_home(struct netns_ctl *c)
{
	if (setns(c->home, CLONE_NEWNET) < 0) {
		log_err("cannot return to the daemon's network namespace: %s; exiting",
			strerror(errno));
		abort();
	}
}

static int map_fd(struct netns_ctl *c, int which)
{
	struct sproxy_bpf *s = c->d->bpf.skel;

	switch (which) {
	case 0: return bpf_map__fd(s->maps.netns_served);
	case 4: return bpf_map__fd(s->maps.netns_pool4);
	case 6: return bpf_map__fd(s->maps.netns_pool6);
	default: return bpf_map__fd(s->maps.netns_reported);
	}
}

/* keep_maps: a pinned daemon stopping leaves the namespace's entries, so
 * that its connections fail rather than go direct (the next daemon clears
 * them, netns_forget). */
static void release(struct netns_ctl *c, struct served *s, const char *why, int keep_maps)
{
	int i;

	if (!s->failed) {
		/* The hooks first: from now on the namespace goes uncaptured. */
		if (!keep_maps) {
			bpf_map_delete_elem(map_fd(c, 0), &s->cookie);
			bpf_map_delete_elem(map_fd(c, 4), &s->cookie);
			bpf_map_delete_elem(map_fd(c, 6), &s->cookie);
		}
		log_info("network namespace netns=%llu: %s; its listeners and UDP pool "
			 "released", (unsigned long long)s->ino, why);
	}
	bpf_map_delete_elem(map_fd(c, 1), &s->cookie);
	udp_pool_free(s->udp);
	for (i = 0; i < 2; i++)
		proxy_listener_free(s->lis[i]);
	udp_ports_queues(s->owner, -1, -1);
	if (s->q4 >= 0)
		close(s->q4);
	if (s->q6 >= 0)
		close(s->q6);
	if (s->nsfd >= 0)
		close(s->nsfd);
	if (s->owner)
		c->owners[s->owner] = 0;
	free(s);
	c->n--;
}

static int new_owner(struct netns_ctl *c)
{
	int i;

	for (i = UDP_OWNER_SELF + 1; i < SPROXY_NETNS_MAX + 2; i++)
		if (!c->owners[i]) {
			c->owners[i] = 1;
			return i;
		}
	return 0;
}

/* Inside the namespace: a listener per family on its loopback, the UDP
 * pool and its queues.  0, or -1 with err. */
static int open_inside(struct netns_ctl *c, struct served *s, uint32_t per,
		       char *err, size_t errlen)
{
	struct daemon *d = c->d;
	struct sockaddr_storage a[2];
	struct sockaddr_in *a4 = (struct sockaddr_in *)&a[0];
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&a[1];
	int i;

	memset(a, 0, sizeof(a));
	a4->sin_family = AF_INET;
	a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a6->sin6_family = AF_INET6;
	a6->sin6_addr = in6addr_loopback;
	for (i = 0; i < 2; i++) {
		s->lis[i] = proxy_listen(d, &a[i], err, errlen);
		if (s->lis[i]) {
			proxy_listener_netns(s->lis[i], s->cookie, (uint64_t)s->ino);
			s->port[i] = htons(addr_port((struct sockaddr *)&a[i]));
		} else if (i == 0 || (errno != EADDRNOTAVAIL && errno != EAFNOSUPPORT))
			return -1;    /* no IPv6 loopback there: IPv6 goes uncaptured */
	}
	s->q4 = bpf_map_create(BPF_MAP_TYPE_QUEUE, "sproxy_nsq4", 0, sizeof(uint32_t),
			       per, NULL);
	s->q6 = bpf_map_create(BPF_MAP_TYPE_QUEUE, "sproxy_nsq6", 0, sizeof(uint32_t),
			       per, NULL);
	if (s->q4 < 0 || s->q6 < 0) {
		snprintf(err, errlen, "cannot create its UDP pool queues: %s", strerror(errno));
		return -1;
	}
	udp_ports_queues(s->owner, s->q4, s->q6);
	s->udp = udp_pool_new_ns(d, per, s->owner, s->nsfd, (uint64_t)s->ino, err, errlen);
	return s->udp ? 0 : -1;
}

/* What the hooks need, the served entry last: until it is there, the
 * namespace goes uncaptured. */
static int publish(struct netns_ctl *c, struct served *s, uint32_t per)
{
	struct sproxy_netns v = { 0 };

	if (bpf_map_update_elem(map_fd(c, 4), &s->cookie, &s->q4, BPF_ANY) < 0)
		return -1;
	if (s->udp->n_slots > per &&
	    bpf_map_update_elem(map_fd(c, 6), &s->cookie, &s->q6, BPF_ANY) < 0)
		return -1;
	v.port4 = s->port[0];
	v.port6 = s->port[1];
	return bpf_map_update_elem(map_fd(c, 0), &s->cookie, &v, BPF_ANY) < 0 ? -1 : 0;
}

/* A namespace that could not be served: kept in the list, marked, so that
 * it is not tried again every second; what was made for it goes. */
static void give_up(struct netns_ctl *c, struct served *s)
{
	int i;

	bpf_map_delete_elem(map_fd(c, 0), &s->cookie);
	bpf_map_delete_elem(map_fd(c, 4), &s->cookie);
	bpf_map_delete_elem(map_fd(c, 6), &s->cookie);
	udp_pool_free(s->udp);
	s->udp = NULL;
	for (i = 0; i < 2; i++) {
		proxy_listener_free(s->lis[i]);
		s->lis[i] = NULL;
	}
	s->failed = 1;
}

/* Whether the last scan saw this namespace too; remembers it for the next. */
static int twice(struct netns_ctl *c, dev_t dev, ino_t ino)
{
	size_t i;

	for (i = 0; i < c->n_now; i++)
		if (c->now[i].dev == dev && c->now[i].ino == ino)
			break;
	if (i == c->n_now && c->n_now < SEEN_MAX)
		c->now[c->n_now++] = (struct seen_ns){ dev, ino };
	for (i = 0; i < c->n_last; i++)
		if (c->last[i].dev == dev && c->last[i].ino == ino)
			return 1;
	return 0;
}

/* Serves the namespace of process pid (in cgroup cg), unless it is the
 * daemon's or served already. */
static void serve(struct netns_ctl *c, int pid, const char *cg)
{
	uint32_t per = c->d->opt->udp_flows < SPROXY_NETNS_POOL ? c->d->opt->udp_flows
								 : SPROXY_NETNS_POOL;
	struct served *s, *x;
	char path[64], err[300];
	struct stat st;
	int nsfd, rc;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
	if (stat(path, &st) < 0 || (st.st_dev == c->home_dev && st.st_ino == c->home_ino))
		return;                 /* gone meanwhile, or ours */
	for (x = c->list; x; x = x->next)
		if (x->dev == st.st_dev && x->ino == st.st_ino) {
			x->seen = 1;
			return;
		}
	if (c->settle && !twice(c, st.st_dev, st.st_ino))
		return;
	/* The namespace the process is in when opened (it may have moved):
	 * the one served. */
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return;
	if (fstat(nsfd, &st) < 0 || (st.st_dev == c->home_dev && st.st_ino == c->home_ino)) {
		close(nsfd);
		return;
	}
	if (c->n >= SPROXY_NETNS_MAX) {
		if (time(NULL) - c->last_full_log >= 60)
			log_warn("network namespace netns=%llu (pid %d, cgroup %s) not served: "
				 "%d namespaces are served already; it goes uncaptured",
				 (unsigned long long)st.st_ino, pid, cg, SPROXY_NETNS_MAX);
		c->last_full_log = time(NULL);
		close(nsfd);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(nsfd);
		return;
	}
	s->nsfd = nsfd;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->q4 = s->q6 = -1;
	s->seen = 1;
	s->next = c->list;
	c->list = s;
	c->n++;
	s->owner = new_owner(c);
	if (setns(nsfd, CLONE_NEWNET) < 0) {
		snprintf(err, sizeof(err), "cannot enter it: %s", strerror(errno));
		rc = -1;
	} else {
		s->cookie = sysenv_netns_cookie();
		rc = open_inside(c, s, per, err, sizeof(err));
		go_home(c);
	}
	if (rc == 0 && publish(c, s, per) < 0) {
		snprintf(err, sizeof(err), "cannot add it to the BPF maps: %s", strerror(errno));
		rc = -1;
	}
	if (rc < 0) {
		log_err("network namespace netns=%llu (pid %d, cgroup %s) not served: %s; "
			"its connections go uncaptured", (unsigned long long)s->ino, pid, cg, err);
		give_up(c, s);
		return;
	}
	log_info("network namespace netns=%llu (pid %d, cgroup %s): serving it "
		 "(listeners on its loopback, a UDP pool of %u ports per family)",
		 (unsigned long long)s->ino, pid, cg, per);
}

/* Every process of dir and the cgroups below it. */
static void scan_dir(struct netns_ctl *c, const char *dir, int depth, size_t *budget)
{
	size_t mlen = strlen(c->d->cg_mount);
	char path[PATH_MAX];
	struct dirent *e;
	FILE *f;
	DIR *dp;
	int pid;

	if (snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= (int)sizeof(path))
		return;
	f = fopen(path, "re");
	if (f) {
		while (*budget && fscanf(f, "%d", &pid) == 1) {
			(*budget)--;
			serve(c, pid, dir[mlen] ? dir + mlen : "/");
		}
		fclose(f);
	}
	if (depth >= SCAN_DEPTH || !*budget || !(dp = opendir(dir)))
		return;
	while ((e = readdir(dp))) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
			continue;
		scan_dir(c, path, depth + 1, budget);
	}
	closedir(dp);
}

/* What an earlier daemon left in maps pinned with --pin: namespaces it
 * served and its containers' pool ports, whose sockets died with it. */
void netns_forget(struct daemon *d)
{
	struct sproxy_bpf *sk = d->bpf.skel;
	struct bpf_map *nsmaps[4] = { sk->maps.netns_served, sk->maps.netns_pool4,
				      sk->maps.netns_pool6, sk->maps.netns_reported };
	struct bpf_map *ports[2] = { sk->maps.ports4, sk->maps.ports6 };
	uint64_t cookie;
	int i, n;

	for (i = 0; i < 4; i++)
		for (n = 0; n < 4 * SPROXY_NETNS_MAX &&
		     bpf_map_get_next_key(bpf_map__fd(nsmaps[i]), NULL, &cookie) == 0; n++)
			bpf_map_delete_elem(bpf_map__fd(nsmaps[i]), &cookie);
	for (i = 0; i < 2; i++) {
		uint32_t key, next, *prev = NULL, gone[256];
		struct sproxy_flow rec;
		size_t k, ng = 0;

		while (ng < 256 && bpf_map_get_next_key(bpf_map__fd(ports[i]), prev, &next) == 0) {
			key = next;
			prev = &key;
			if (bpf_map_lookup_elem(bpf_map__fd(ports[i]), &key, &rec) == 0 &&
			    (rec.flags & SPROXY_FLOW_NETNS))
				gone[ng++] = key;
		}
		for (k = 0; k < ng; k++) {
			struct sproxy_flow_key fk;

			if (bpf_map_lookup_elem(bpf_map__fd(ports[i]), &gone[k], &rec) < 0)
				continue;
			memset(&fk, 0, sizeof(fk));
			fk.cookie = rec.cookie;
			fk.dst = rec.dst;
			bpf_map_delete_elem(bpf_map__fd(sk->maps.flows), &fk);
			bpf_map_delete_elem(bpf_map__fd(ports[i]), &gone[k]);
		}
	}
}

/* Serves new namespaces; releases those no process of the cgroup is in
 * any more (the container stopped).  A namespace is known by its inode:
 * a cookie cannot be read without entering it. */
static void scan(struct netns_ctl *c)
{
	size_t budget = SCAN_PROCS;
	struct served **pp, *s;

	for (s = c->list; s; s = s->next)
		s->seen = 0;
	c->n_now = 0;
	scan_dir(c, c->d->target, 0, &budget);
	memcpy(c->last, c->now, c->n_now * sizeof(c->now[0]));
	c->n_last = c->n_now;
	if (!budget)
		return;             /* not every process seen: release nothing */
	for (pp = &c->list; (s = *pp);) {
		if (s->seen) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		release(c, s, "no process of the cgroup left in it", 0);
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	scan(arg);
}

struct netns_ctl *netns_start(struct daemon *d, char *err, size_t errlen)
{
	struct netns_ctl *c = calloc(1, sizeof(*c));
	struct timeval sec = { 1, 0 };
	struct stat st;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->d = d;
	c->home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (c->home < 0 || fstat(c->home, &st) < 0) {
		snprintf(err, errlen, "/proc/thread-self/ns/net: %s", strerror(errno));
		netns_stop(c);
		return NULL;
	}
	c->home_dev = st.st_dev;
	c->home_ino = st.st_ino;
	sockdiag_netns(-1);        /* its way home, made now, while at home */
	scan(c);                   /* at start: every namespace there now */
	c->settle = 1;
	c->tick = event_new(d->base, -1, EV_PERSIST, on_tick, c);
	if (!c->tick || event_add(c->tick, &sec) < 0) {
		snprintf(err, errlen, "out of memory");
		netns_stop(c);
		return NULL;
	}
	return c;
}

void netns_stop(struct netns_ctl *c)
{
	struct served *s;

	if (!c)
		return;
	if (c->tick)
		event_free(c->tick);
	while ((s = c->list)) {
		c->list = s->next;
		release(c, s, "the daemon is stopping", c->d->bpf.pin != NULL);
	}
	if (c->home >= 0)
		close(c->home);
	free(c);
}

/* The cookie of process pid's network namespace; 0 when unknown. */
static uint64_t cookie_of(struct netns_ctl *c, int pid)
{
	uint64_t cookie = 0;
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (setns(fd, CLONE_NEWNET) == 0) {
		cookie = sysenv_netns_cookie();
		go_home(c);
	}
	close(fd);
	return cookie;
}

void netns_unserved(struct netns_ctl *c, uint64_t cookie, uint32_t tgid, const char *cg)
{
	struct served *s;

	if (!c)
		return;
	for (s = c->list; s; s = s->next)
		if (s->cookie == cookie)
			return;
	/* The hooks name the process as the init PID namespace sees it: in
	 * another (a daemon in a PID namespace of its own), that pid here may
	 * be another process.  Only the namespace reported is served. */
	if (cookie_of(c, (int)tgid) != cookie)
		return;
	c->settle = 0;             /* a socket there: no passer-by */
	serve(c, (int)tgid, cg);
	c->settle = 1;
}

void netns_udp_release(struct netns_ctl *c, uint64_t cookie)
{
	struct served *s;

	if (!c)
		return;
	for (s = c->list; s; s = s->next)
		if (s->udp)
			udp_pool_release(s->udp, cookie);
}
