/* Types shared by the BPF programs (bpf/sproxy.bpf.c) and user space.
 * Plain fixed-size types only: this header is compiled both against
 * vmlinux.h and against the C library. */
#ifndef SPROXY_H
#define SPROXY_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define SPROXY_COMM_LEN   16
#define SPROXY_BYPASS_PORTS 8

/* An endpoint, addresses in network order.  IPv4 is stored IPv4-mapped
 * (::ffff:a.b.c.d) so that one key format serves both families and an
 * IPv4 client accepted on an IPv6 socket still matches. */
struct sproxy_addr {
	union {
		__u8  ip[16];
		__u32 ip32[4];
	};
	__u16 port;   /* network order */
	__u16 pad;
};

/* The process that opened a captured socket. */
struct sproxy_proc {
	__u32 pid;        /* thread id, as the kernel sees it */
	__u32 tgid;       /* process id */
	__u32 uid;
	__u32 gid;
	__u64 cgroup_id;
	char  comm[SPROXY_COMM_LEN];
};

/* TCP options the application set on its socket, which the proxy carries
 * to its own leg out (a dead server is only seen from that leg). */
#define SPROXY_OPT_KEEPALIVE     (1u << 0)
#define SPROXY_OPT_KEEPIDLE      (1u << 1)
#define SPROXY_OPT_KEEPINTVL     (1u << 2)
#define SPROXY_OPT_KEEPCNT       (1u << 3)
#define SPROXY_OPT_USER_TIMEOUT  (1u << 4)

struct sproxy_sockopts {
	__u32 set;           /* SPROXY_OPT_*: which ones the application set */
	__u32 keepalive;     /* SO_KEEPALIVE, 0 or 1 */
	__u32 keepidle;      /* TCP_KEEPIDLE, s */
	__u32 keepintvl;     /* TCP_KEEPINTVL, s */
	__u32 keepcnt;       /* TCP_KEEPCNT */
	__u32 user_timeout;  /* TCP_USER_TIMEOUT, ms */
};

/* One captured TCP connection: what connect() asked for, and who asked. */
struct sproxy_conn {
	struct sproxy_addr dst;
	struct sproxy_proc proc;
	__u64 cookie;     /* the application socket's cookie */
	__u32 family;     /* AF_INET or AF_INET6: the application's socket */
	__u32 isn;        /* tuple record: the proxy end's initial sequence
			   * number, as the SYN-ACK told the application */
	/* Kept current in the record keyed by cookie (conns) for as long as
	 * the socket lives; the copy keyed by 4-tuple may be older. */
	struct sproxy_sockopts opts;
};

/* SO_ORIGINAL_DST asked with a buffer of exactly this size (larger than
 * any socket address, so no other caller sees it) is answered with the
 * connection's whole record: the destination and the process in one call,
 * for a record the hook has checked is this connection's. */
#define SPROXY_ORIGDST_MAGIC 0x7370726f78796f64ull
struct sproxy_origdst {
	__u64 magic;      /* SPROXY_ORIGDST_MAGIC */
	struct sproxy_conn rec;
	__u8 pad[48];     /* 160 bytes in all: above sockaddr_storage's 128 */
};

/* The proxy's accepted socket finds its record by this 4-tuple: the
 * application's end and the listener's end, as the accepted socket sees
 * them (its remote and local addresses), within one network namespace. */
struct sproxy_tuple {
	__u64 netns;
	struct sproxy_addr app;
	struct sproxy_addr proxy;
};

/* A UDP flow: one (application socket, destination) pair. */
struct sproxy_flow_key {
	__u64 cookie;
	struct sproxy_addr dst;
};

/* What a UDP pool port stands for.  The proxy reads it to relay; recvmsg
 * and getpeername read it to show the application the original peer. */
struct sproxy_flow {
	struct sproxy_addr dst;
	struct sproxy_proc proc;
	__u64 cookie;
	__u64 generation;  /* bumped each time the port is handed out */
	/* The application socket's own address when sendmsg handed the port
	 * out (it is bound by then; unspecified = any address of it), so
	 * that its datagrams are known from others'.  Port 0: unknown (a
	 * connect() runs its hook before the socket is bound). */
	struct sproxy_addr app;
	__u32 flags;       /* SPROXY_FLOW_* */
};

/* The flow of a connected socket: sends on it pass no hook, so it cannot
 * be given a new port when idle; it lives as long as the socket. */
#define SPROXY_FLOW_CONNECTED 1
/* The port came from the DNS reserve and goes back there. */
#define SPROXY_FLOW_RESERVE   2
/* The port is of another network namespace's pool (a container's). */
#define SPROXY_FLOW_NETNS     4

/* Network namespaces other than the daemon's that it serves (containers):
 * at most this many at once, each with a UDP pool of at most
 * SPROXY_NETNS_POOL ports per family. */
#define SPROXY_NETNS_MAX  128
#define SPROXY_NETNS_POOL 64

/* A served namespace: its loopback listeners (127.0.0.1, [::1]), opened
 * inside it; ports in network order, 0 = none of that family. */
struct sproxy_netns {
	__u16 port4;
	__u16 port6;
	__u32 pad;
};

struct sproxy_bypass_key {
	__u32 prefixlen;   /* over the 128-bit (IPv4-mapped) address */
	union {
		__u8  ip[16];
		__u32 ip32[4];
	};
};

struct sproxy_bypass_val {
	__u16 ports[SPROXY_BYPASS_PORTS];  /* network order; all zero = any */
};

enum sproxy_stat {
	SPROXY_STAT_TCP_REDIRECTED,
	SPROXY_STAT_UDP_REDIRECTED,    /* new UDP flows */
	SPROXY_STAT_DNS_REDIRECTED,    /* connections/flows to port 53 */
	SPROXY_STAT_BYPASSED,
	SPROXY_STAT_SELF,              /* the daemon's own sockets */
	SPROXY_STAT_OTHER_NETNS,       /* not the daemon's namespace: left alone */
	SPROXY_STAT_SOCKOPS_MISS,      /* established, but no record */
	SPROXY_STAT_ORIGDST_HIT,
	SPROXY_STAT_ORIGDST_MISS,
	SPROXY_STAT_POOL_EMPTY,        /* UDP flow refused: no free pool port */
	SPROXY_STAT_MAP_FULL,          /* a map update failed */
	SPROXY_STAT_RECV_RESTORED,
	SPROXY_STAT_RECORD_MISMATCH,   /* a tuple's record is another connection's */
	SPROXY_STAT_UDP_EVENTS_QUIET,  /* dry/limit events not sent (rate limit) */
	SPROXY_STAT_UDP_PROC_LIMIT,    /* UDP flow refused: the process has its share */
	SPROXY_STAT_FAST_TCP,          /* connections on the kernel path */
	SPROXY_STAT_FAST_UDP,          /* UDP flows on the kernel path */
	SPROXY_STAT_FAST_REJECT,       /* connections and flows a rule refused in the hook */
	SPROXY_STAT_FAST_FULL,         /* kernel path records full: sent to the proxy */
	SPROXY_STAT__MAX,
};

enum sproxy_event_type {
	SPROXY_EV_UDP_RELEASE = 1,     /* a UDP socket with flows closed */
	SPROXY_EV_POOL_EMPTY,
	SPROXY_EV_MAP_FULL,            /* a connection refused: no room for its record */
	SPROXY_EV_MAP_HIGH,            /* records reached 80% of --map-size;
					* cookie holds their number */
	SPROXY_EV_SOCKOPT,             /* a connected socket's options changed */
	SPROXY_EV_UDP_LIMIT,           /* a process reached --udp-flows-per-process */
	SPROXY_EV_FAST,                /* a kernel-path connection or flow ended:
					* struct sproxy_fp_event */
	SPROXY_EV_NETNS,               /* a socket of a namespace not served yet;
					* cookie: the netns cookie */
};

struct sproxy_event {
	__u32 type;
	__u32 family;      /* for POOL_EMPTY: AF_INET or AF_INET6 */
	__u64 cookie;
	struct sproxy_proc proc;
};

/* The kernel fast path (bpf/fastpath.bpf.h).  User space compiles the
 * rules the hooks can evaluate into maps; each match is a hit: the rule's
 * index (its line in the rule set, the lowest wins as in the rule list)
 * and what it decides.  A rule the hooks cannot evaluate is a hit that
 * says "ask the proxy", so that no later rule is taken before it. */
#define SPROXY_FP_DIRECT  0
#define SPROXY_FP_REJECT  1
#define SPROXY_FP_PROXY   2
#define SPROXY_FP_NONE    0xffffffffu    /* idx: no rule */

struct sproxy_fp_hit {
	__u32 idx;
	__u32 verdict;     /* SPROXY_FP_* */
};

/* One port: the first DST-PORT rule for it, and whether tagging may
 * apply there (then the proxy must see the connection). */
struct sproxy_fp_port {
	struct sproxy_fp_hit hit;
	__u32 tag;
	__u32 pad;
};

struct sproxy_fp_conf {
	__u32 enabled;
	__u32 default_verdict;              /* no rule matched */
	struct sproxy_fp_hit barrier;       /* first rule the hooks cannot evaluate */
	struct sproxy_fp_hit barrier_fake;  /* the same, for a FakeIP connection */
	struct sproxy_fp_hit net[2];        /* first NETWORK,tcp / NETWORK,udp */
	struct sproxy_fp_hit match;         /* MATCH */
};

/* A FakeIP address whose name the daemon resolved: where a kernel-path
 * connection to it goes. */
struct sproxy_fp_fake {
	struct sproxy_addr real;            /* port 0 */
	struct sproxy_fp_hit name;          /* first DOMAIN* rule for the name */
	__u64 name_hash;
	__u64 filled_ns;                    /* CLOCK_MONOTONIC */
};

#define SPROXY_FPC_CONNECTING  1        /* TCP: the SYN went out */
#define SPROXY_FPC_ESTABLISHED 2
#define SPROXY_FPC_FAKE        4        /* dst was a FakeIP address, rewritten */

/* A TCP connection on the kernel path, by socket cookie. */
struct sproxy_fp_conn {
	struct sproxy_addr dst;             /* as the application asked */
	struct sproxy_addr real;            /* where it went */
	struct sproxy_proc proc;
	__u64 start_ns;
	__u32 family;
	__u32 flags;                        /* SPROXY_FPC_* */
	__u32 rule;                         /* the rule that decided (1-based); 0: none */
	__u32 pad;
};

/* A UDP flow on the kernel path: (socket, destination), first and last
 * datagram seen by the hooks (a connected socket's sends pass none). */
struct sproxy_fp_flow {
	struct sproxy_proc proc;
	__u64 first_ns;
	__u64 last_ns;
	__u32 family;
	__u32 flags;                        /* SPROXY_FPF_* */
	__u32 rule;                         /* the rule that decided (1-based); 0: none */
	__u32 pad;
};

#define SPROXY_FPF_CONNECTED 1          /* made by connect() */
#define SPROXY_FPF_REJECTED  2          /* refused (logged at the first datagram) */

#define SPROXY_FPR_OK       0
#define SPROXY_FPR_FAILED   1           /* never established */
#define SPROXY_FPR_RESET    2           /* ended without both FINs */
#define SPROXY_FPR_REJECTED 3           /* a rule refused it in the hook */
#define SPROXY_FPR_OPEN     4           /* user space: open at exit */

/* Starts as struct sproxy_event does (type SPROXY_EV_FAST). */
struct sproxy_fp_event {
	__u32 type;
	__u32 family;
	__u64 cookie;
	struct sproxy_proc proc;
	struct sproxy_addr dst;             /* as the application asked */
	struct sproxy_addr src;             /* its own end (TCP); port 0 unknown */
	__u64 up;                           /* bytes the server acknowledged */
	__u64 down;                         /* bytes received */
	__u64 duration_ns;
	__u32 result;                       /* SPROXY_FPR_* */
	__u32 proto;                        /* IPPROTO_TCP or IPPROTO_UDP */
	__u32 rule;                         /* the rule that decided (1-based); 0: none */
	__u32 pad;
};

/* --to: a connection handed to another proxy ended.  Sent by the
 * application's own socket (sockops, at TCP_CLOSE), since the daemon
 * never sees it; a number of its own, apart from the list above.  Begins
 * as struct sproxy_event does. */
#define SPROXY_EV_HANDOFF 64

struct sproxy_handoff_event {
	__u32 type;
	__u32 family;
	__u64 cookie;
	struct sproxy_proc proc;
	struct sproxy_addr dst;    /* what the application asked for */
	struct sproxy_addr src;    /* the application socket's own address */
	__u64 up, down;            /* bytes: sent (acknowledged), received */
	__u64 duration_ns;         /* from established to closed */
};

#endif
