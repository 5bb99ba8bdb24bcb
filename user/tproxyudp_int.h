/* Inside UDP behind TPROXY: the listener and its flow table (tproxyudp.c)
 * and one flow, its reply socket, route, relay and DNS (tproxyudp_flow.c).
 * Nothing else includes this. */
#ifndef SPROXY_TPROXYUDP_INT_H
#define SPROXY_TPROXYUDP_INT_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>

#include "connector.h"

#define BUCKETS      1024
#define MAX_QUEUED   16    /* datagrams held while a flow connects */
#define MAX_DNS      32    /* queries in flight per flow */
#define MAX_DGRAM    65536

struct policyset;
struct tflow;

struct tdns {
	struct tflow *flow;
	struct dns_pending *p;
	int starting;
};

struct queued {
	struct queued *next;
	size_t len;
	unsigned char data[];
};

struct tflow {
	struct tproxy_udp *u;
	struct tflow *hnext;              /* in its bucket */
	struct tflow *prev, *next;        /* every flow */
	unsigned bucket;
	struct sockaddr_storage client;   /* unmapped */
	struct target t;                  /* t.addr: the original destination */
	int is_dns;
	int own;                          /* this daemon's own lookup: relayed, not logged */
	const char *via;                  /* the route, for the log */
	struct policyset *ps;             /* holds the route's upstream (and via) */
	const char *refused;              /* set: datagrams are dropped, this says why */
	char why[200];
	char dns_err[200];
	int rfd;                          /* bound to t.addr, connected to client */
	struct event *rev;
	int out_fd;
	struct event *oev;
	struct connect_req *creq;
	struct policy_req *preq;          /* deciding, a name being looked up */
	int decided, rule, rejected;      /* the route, kept across reloads */
	char route[64];
	char sniffed_host[256];           /* from a QUIC Initial */
	int sniffed;                      /* enum sniff_kind */
	struct queued *q, **qtail;
	int nq;
	struct tdns *dns[MAX_DNS];
	uint64_t up, down;
	struct timespec start;
	time_t last;
};

struct tproxy_udp {
	struct daemon *d;
	struct sockaddr_storage addr;
	int fd;
	struct event *ev, *sweep;
	struct tflow *bucket[BUCKETS];
	struct tflow *all;
	size_t n, max;
	uint64_t full;
	time_t last_full_log, last_nodst_log;
};

/* One datagram's room, for the listener and every flow's sockets: the
 * daemon is one thread and each reader is done with it before it returns. */
extern unsigned char tudp_dgram[MAX_DGRAM];

/* A flow for (client, dst), put in bucket h and the list of every flow;
 * first (n bytes) is its first datagram, for sniffing.  Refused flows are
 * made too (f->refused says why), so their datagrams are dropped quietly.
 * NULL when out of memory. */
struct tflow *tflow_new(struct tproxy_udp *u, const struct sockaddr_storage *client,
			const struct sockaddr_storage *dst, unsigned h,
			const uint8_t *first, size_t n);
/* A datagram from the client, through the listener or the flow's socket. */
void tflow_from_client(struct tflow *f, const unsigned char *data, size_t len);
/* Writes the flow's log line, and frees it and all it holds. */
void tflow_end(struct tflow *f);

#endif
