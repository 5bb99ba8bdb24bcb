/* State shared by the parts of a running daemon. */
#ifndef SPROXY_DAEMON_H
#define SPROXY_DAEMON_H
#include <limits.h>
#include <stdint.h>
#include <sys/socket.h>

#include "live.h"
#include "loader.h"
#include "relay.h"
#include "upstream.h"

struct event_base;
struct dns_server;
struct udp_pool;
struct rules;
struct policyset;
struct fastpath;
struct netns_ctl;
struct reload;

#define SPROXY_MARK_DEFAULT 0x5350  /* "SP" */

struct options {
	const char *cgroup;
	struct sockaddr_storage listen[9];  /* 8 given, and one for a missing family */
	int n_listen;
	struct bypass_entry bypass[256];
	int n_bypass;
	const char *log_path;
	int json;
	int verbose;
	int allow_root;
	unsigned udp_timeout;         /* seconds */
	unsigned connect_timeout;     /* seconds */
	uint32_t map_size;
	uint32_t udp_flows;           /* pool ports per family */
	uint32_t udp_per_proc;        /* pool ports one process may hold; 0: any */
#define UDP_PER_PROC_AUTO UINT32_MAX  /* a quarter of udp_flows, none below 16 */
	uint32_t mark;
	int relay_copy;               /* 1: never splice */
	unsigned threads;             /* relay loops in all; 0: half the CPUs */
	int disable_fakeip;
	const char *fakeip_range[2];  /* IPv4, IPv6; NULL = default */
	const char *fakeip_store;
	const char *fakeip_exclude[64];
	int n_fakeip_exclude;
	struct sockaddr_storage resolvers[8];
	int n_resolvers;
	unsigned fakeip_ttl;
	int reattach;                 /* 1: wait for a removed CGROUP to come back */
	unsigned header_timeout;      /* seconds to finish a request header; 0 = none */
	unsigned idle_timeout;        /* seconds without a byte either way; 0 = none */
	size_t header_budget;         /* bytes of header buffers, all connections */
	const char *tag;              /* User-Agent tag template; NULL = off */
	int allow_private_answers;    /* proxied names may resolve to loopback etc. */
	unsigned fakeip_per_process;  /* new names per process per hold, 0 = default */
	const char *control_dir;      /* NULL: $SPROXY_BPF_CONTROL_DIR or /run/sproxy-bpf */
	struct rules *rules;          /* --rule lines, compiled by cli_finish */
	int resolve_later;            /* upstreams' host names left unresolved
	                               * (a reload resolves them off the loop) */
	int sniff;                    /* 1: peek for a name on real addresses */
	int sniff_override;           /* 1: upstreams get the sniffed name */
	unsigned sniff_timeout;       /* ms to wait for the client's first bytes */
	const char *origin;           /* "FILE:LINE" of the config line being applied */
	char **owned;                 /* copies of values that outlive their source */
	int n_owned;
	struct upstream upstream[UPSTREAM_MAX];  /* --upstream, by name: the running
	                                          * daemon's are d->policy's */
	int n_upstream;
	int udp_over_http;            /* UDP_OVER_HTTP_REJECT or _DIRECT */
	char *const *run_argv;        /* run: CMD and its arguments; NULL: attach */
	const char *run_user;         /* run --user: NAME or uid */
	const char *run_parent;       /* run --cgroup-parent */
	int tproxy;                   /* `tproxy`: TPROXY listeners, no cgroup */
	int fast_path_off;            /* --fast-path off: every connection proxied */
	struct { uint16_t lo, hi; } tls_ports[32];  /* --tls-ports: never tagged */
	int n_tls_ports;
	int netns_current;            /* --netns current: only the daemon's namespace */
	const char *pin_dir;          /* --pin: on a BPF filesystem; NULL = fail-open */
	struct sockaddr_storage handoff_to;  /* --to; family 0: not given */
	const char *proxy_cgroup;     /* --proxy-cgroup: where the --to proxy runs */
	const char *user;             /* attach --user: the daemon's, once set up */
	int no_drop;                  /* --no-drop: keep root and every capability */
};

struct daemon {
	struct event_base *base;
	const struct options *opt;
	struct loader bpf;
	struct dns_server *dns;
	struct udp_pool *udp;
	struct netns_ctl *nsctl;      /* other network namespaces served; NULL: none */
	char cg_mount[PATH_MAX];
	char target[PATH_MAX];
	uint64_t netns;
	int tuples_fd;
	uint64_t n_conns;             /* open TCP sessions */
	struct relay_limits limits;   /* shared by every relay */
	struct live_list live;        /* sessions and flows, for status */
	time_t attached_at;           /* when capture (re)started */
	/* The rules and upstreams in force (policyset.h).  SIGHUP swaps in a
	 * new set whole; a decision that waits (on DNS), and a connection
	 * routed through an upstream, hold the set they were given. */
	struct policyset *policy;
	struct fastpath *fast;        /* the kernel fast path's user side */
	int argc;                     /* the command line, read again on SIGHUP */
	char **argv;
	struct reload *reload;        /* SIGHUP's (reload.c); NULL: none yet */
};

/* d->dns from d->opt (either mode).  0, or -1 with err. */
int daemon_dns_new(struct daemon *d, char *err, size_t errlen);
/* Sets the socket mark that the BPF side skips.  Logs a failure. */
void daemon_mark(const struct daemon *d, int fd);
/* The loops bulk relays spread over, once privileges are dropped (threads
 * would keep the capabilities); one loop when they cannot start. */
void daemon_loops_start(struct daemon *d);
void daemon_loops_stop(struct daemon *d);
/* Replaces the thread name the hooks saw with the process's. */
struct sproxy_proc;
void daemon_process_comm(struct sproxy_proc *p);
/* The cgroup path of a connection's process, for the log. */
const char *daemon_cgroup_name(const struct daemon *d, uint64_t id);

#endif
