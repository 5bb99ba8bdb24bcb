/* Inside the UDP side: the pool (udp.c) and its flows (udp_flow.c). */
#ifndef SPROXY_UDP_INT_H
#define SPROXY_UDP_INT_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>

#include "connector.h"
#include "live.h"
#include "sproxy.h"

#define MAX_QUEUED   16    /* datagrams held while a flow connects */
#define MAX_QUEUED_BYTES (4u << 20)  /* ... and by all flows together */
#define MAX_DNS      32    /* queries in flight per flow */
#define MAX_DGRAM    65536

struct policyset;
struct udp_flow;

struct udp_slot {
	struct udp_pool *pool;
	int family;
	int fd;
	uint32_t port;
	struct event *ev;
	struct udp_flow *flow;       /* NULL: free, or handed out but not seen yet */
};

struct dns_query {
	struct udp_flow *flow;
	struct dns_pending *p;
	int starting;
};

struct queued {
	struct queued *next;
	size_t len;
	uint8_t data[];
};

struct udp_flow {
	struct udp_slot *slot;
	struct udp_flow *prev, *next;
	struct sproxy_flow rec;
	struct sockaddr_storage app;
	struct target t;
	int is_dns;
	const char *refused;         /* set: datagrams are dropped, this says why */
	char why[160];
	char dns_err[200];           /* the last query that failed, and why */
	int out_fd;
	struct event *out_ev;
	struct connect_req *creq;
	struct policy_req *preq;     /* deciding, a name being looked up */
	/* The route as decided once, kept across reloads and retries. */
	int decided, rule, rejected;
	char route[64];
	const struct upstream *upstream;  /* NULL: direct */
	struct policyset *ps;        /* holds upstream (and via) while it lives */
	char sniffed_host[256];      /* from a QUIC Initial, to a real address */
	int sniffed;                 /* enum sniff_kind */
	const char *via;             /* the route, for the log */
	time_t retry_at;             /* set: the connector failed; try again then */
	int closing;                 /* the application closed; end once sent */
	struct queued *q, **qtail;
	int nq;
	size_t qbytes;
	struct dns_query *dns[MAX_DNS];
	uint64_t up, down;
	struct timespec start;
	time_t last;                 /* CLOCK_MONOTONIC seconds */
	struct live live;            /* for status */
};

struct udp_pool {
	struct daemon *d;
	struct udp_slot *slots;
	size_t n_slots;
	struct udp_flow *active;
	size_t n_active;
	struct event *sweep;
	time_t last_orphan_scan;
	time_t last_dry_log, last_limit_log, last_queue_log, last_owner_log;
	time_t last_connect_log;
	uint64_t dry, limited, queue_drops, strangers;
	size_t queued;               /* bytes held by all flows still connecting */
	uint32_t per_proc;
	struct bcast *bcast;         /* broadcast goes direct (UDP only) */
	int no_diag;                 /* sock_diag cannot tell a port's owner */
	int owner;                   /* UDP_OWNER_SELF, or a served namespace's */
	int netns_fd;                /* that namespace (-1: the daemon's) */
	uint64_t netns_ino;          /* for the log; 0: the daemon's */
};

/* CLOCK_MONOTONIC seconds: a wall clock set back would keep flows forever,
 * set forward would end them all. */
time_t udp_mono_sec(void);
/* 127.0.0.1:<port> or [::1]:<port>. */
void udp_slot_addr(const struct udp_slot *s, struct sockaddr_storage *ss);
/* The flow a first datagram (data) from `from` makes, or NULL (no record:
 * a late datagram; or not from the socket the port went to).  The
 * datagram is only looked at (a QUIC Initial's name); udp_flow_in takes
 * it. */
struct udp_flow *udp_flow_new(struct udp_slot *slot, const struct sockaddr_storage *from,
			      const uint8_t *data, size_t n);
/* A datagram of the application, on its way out. */
void udp_flow_in(struct udp_flow *f, const uint8_t *data, size_t n);
/* Ends a flow with its log line and gives its port back. */
void udp_flow_end(struct udp_flow *f, const char *result, const char *err);

#endif
