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
	SPROXY_STAT__MAX,
};

enum sproxy_event_type {
	SPROXY_EV_UDP_RELEASE = 1,     /* a UDP socket with flows closed */
	SPROXY_EV_POOL_EMPTY,
	SPROXY_EV_MAP_FULL,            /* a connection refused: no room for its record */
	SPROXY_EV_MAP_HIGH,            /* records reached 80% of --map-size;
					* cookie holds their number */
	SPROXY_EV_SOCKOPT,             /* a connected socket's options changed */
};

struct sproxy_event {
	__u32 type;
	__u32 family;      /* for POOL_EMPTY: AF_INET or AF_INET6 */
	__u64 cookie;
	struct sproxy_proc proc;
};

#endif
