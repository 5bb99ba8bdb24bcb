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
#include "udprelay.h"

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

/* A pool flow: the common part (r.client is the application's socket,
 * r.proc its process) and what the pool adds. */
struct udp_flow {
	struct udprelay r;           /* first: a struct udprelay * is the flow */
	struct udp_slot *slot;
	struct sproxy_flow rec;
	struct live live;            /* for status */
};

struct udp_pool {
	struct daemon *d;
	struct udp_slot *slots;
	size_t n_slots;
	struct event *sweep;
	time_t last_orphan_scan;
	time_t last_dry_log, last_limit_log, last_owner_log;
	uint64_t dry, limited, strangers;
	struct udprelay_table flows; /* the flows open, and what they share */
	uint32_t per_proc;
	struct bcast *bcast;         /* broadcast goes direct (UDP only) */
	int no_diag;                 /* sock_diag cannot tell a port's owner */
	int owner;                   /* UDP_OWNER_SELF, or a served namespace's */
	int netns_fd;                /* that namespace (-1: the daemon's) */
	uint64_t netns_ino;          /* for the log; 0: the daemon's */
};

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
/* A flow ends by udprelay_end(&f->r): its log line, its port given back. */

#endif
