/* Inside UDP behind TPROXY: the listener and its flow table (tproxyudp.c)
 * and one flow's reply socket and what its kind adds (tproxyudp_flow.c);
 * its route, relay and DNS are udprelay's.  Nothing else includes this. */
#ifndef SPROXY_TPROXYUDP_INT_H
#define SPROXY_TPROXYUDP_INT_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>

#include "udprelay.h"

#define BUCKETS      1024

/* A TPROXY flow: the common part (r.client is the client, unmapped; no
 * process) and what TPROXY adds. */
struct tflow {
	struct udprelay r;                /* first: a struct udprelay * is the flow */
	struct tproxy_udp *u;
	struct tflow *hnext;              /* in its bucket */
	unsigned bucket;
	int own;                          /* this daemon's own lookup: relayed, not logged */
	int rfd;                          /* bound to r.t.addr, connected to the client */
	struct event *rev;
};

struct tproxy_udp {
	struct daemon *d;
	struct sockaddr_storage addr;
	int fd;
	struct event *ev, *sweep;
	struct tflow *bucket[BUCKETS];
	size_t max;
	uint64_t full;
	time_t last_full_log, last_nodst_log;
	struct udprelay_table flows;      /* every flow, and what they share */
};

/* One datagram's room, for the listener and every flow's sockets: the
 * daemon is one thread and each reader is done with it before it returns. */
extern unsigned char tudp_dgram[MAX_DGRAM];

/* A flow for (client, dst), put in bucket h and the list of every flow;
 * first (n bytes) is its first datagram, for sniffing.  Refused flows are
 * made too (f->r.refused says why), so their datagrams are dropped quietly.
 * NULL when out of memory. */
struct tflow *tflow_new(struct tproxy_udp *u, const struct sockaddr_storage *client,
			const struct sockaddr_storage *dst, unsigned h,
			const uint8_t *first, size_t n);
/* A datagram from the client, through the listener or the flow's socket. */
void tflow_from_client(struct tflow *f, const unsigned char *data, size_t len);
/* A flow ends by udprelay_end(&f->r): its log line, its reply socket closed. */

#endif
