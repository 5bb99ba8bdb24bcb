/* A UDP flow's route, relay and log line, whichever way it was captured:
 * a pool port the eBPF side sent it to (udp_flow.c), or TPROXY in gateway
 * mode (tproxyudp_flow.c).  Each embeds a struct udprelay and says in a
 * small table of ops what differs: how a reply reaches the client, what
 * the log line adds, how the flow leaves its table.  Data flows one way:
 * original destination (and name) -> policy -> connector -> relay. */
#ifndef SPROXY_UDPRELAY_H
#define SPROXY_UDPRELAY_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>

#include "connector.h"

#define MAX_QUEUED   16    /* datagrams held while a flow connects */
#define MAX_QUEUED_BYTES (4u << 20)  /* ... and by all of a table's flows together */
#define MAX_DNS      32    /* queries in flight per flow */
#define MAX_DGRAM    65536

struct conn_log;
struct daemon;
struct policyset;
struct sproxy_proc;
struct udprelay;

struct udprelay_dns {
	struct udprelay *r;
	struct dns_pending *p;
	int starting;
};

struct udprelay_queued {
	struct udprelay_queued *next;
	size_t len;
	uint8_t data[];
};

struct udprelay_ops {
	/* A datagram to the client, as from the original destination:
	 * 0, or -1 when it was dropped (logged here). */
	int (*reply)(struct udprelay *r, const void *data, size_t len);
	/* Who the flow is, for a warning: "of curl (pid 12)", "from 192.0.2.1:5353". */
	void (*who)(const struct udprelay *r, char *buf, size_t len);
	/* What the log line adds (process, cgroup, capture=...): 0, or -1
	 * for no line. */
	int (*log)(const struct udprelay *r, struct conn_log *c);
	/* Frees the flow and what only its kind holds: the rest is gone
	 * already, and it is out of its table's list. */
	void (*free)(struct udprelay *r);
};

/* The clock of a flow's last datagram and of the sweeps: seconds, from
 * the monotonic clock (a wall clock set back would keep flows forever). */
time_t udprelay_now(void);

/* What the flows of one table (a pool, a TPROXY listener) share: the
 * list of them all, the bytes they hold queued (bounded to
 * MAX_QUEUED_BYTES), and when their warnings were last said. */
struct udprelay_table {
	struct udprelay *all;
	size_t n;
	size_t queued;
	uint64_t queue_drops;
	time_t last_queue_log, last_connect_log;
};

struct udprelay {
	const struct udprelay_ops *ops;
	struct udprelay_table *tab;
	struct udprelay *prev, *next;     /* in tab->all */
	struct daemon *d;
	const struct sproxy_proc *proc;   /* NULL: none known (TPROXY) */
	struct sockaddr_storage client;   /* family 0: not known (no src= in the log) */
	struct target t;                  /* t.addr: the original destination */
	int is_dns;                       /* answered by the built-in DNS server */
	const char *refused;              /* set: datagrams are dropped, this says why */
	char why[200];
	char dns_err[200];                /* the last query that failed, and why */
	int out_fd;
	struct event *out_ev;
	struct connect_req *creq;
	struct policy_req *preq;          /* deciding, a name being looked up */
	/* The route as decided once, kept across reloads and retries. */
	int decided, rule, rejected;
	char route[64];
	const struct upstream *upstream;  /* NULL: direct */
	struct policyset *ps;             /* holds upstream (and via) while it lives */
	char sniffed_host[256];           /* from a QUIC Initial, to a real address */
	int sniffed;                      /* enum sniff_kind */
	const char *via;                  /* the route, for the log */
	time_t retry_at;                  /* set: the connector failed; try again then */
	int closing;                      /* the client is gone; end once sent */
	struct udprelay_queued *q, **qtail;
	int nq;
	size_t qbytes;
	struct udprelay_dns *dns[MAX_DNS];
	uint64_t up, down;
	struct timespec start;            /* CLOCK_MONOTONIC */
	time_t last;                      /* udprelay_now() of the last datagram */
};

/* A new flow's common part (r zeroed by the caller): to dst, from client;
 * put in tab's list. */
void udprelay_init(struct udprelay *r, const struct udprelay_ops *ops,
		   struct udprelay_table *tab, struct daemon *d,
		   const struct sockaddr_storage *client, const struct sockaddr_storage *dst);
/* The name the destination goes by: its FakeIP name, or with sniff one
 * read from first (a QUIC Initial).  -1: a FakeIP address mapped to no
 * name (the flow is refused). */
int udprelay_name(struct udprelay *r, const uint8_t *first, size_t n, int sniff);
/* Asks the policy for the route, then connects out on it. */
void udprelay_decide(struct udprelay *r);
/* Connects out past the rules, by the default route. */
void udprelay_default_route(struct udprelay *r);
/* A datagram of the client, on its way out. */
void udprelay_in(struct udprelay *r, const uint8_t *data, size_t n);
/* Writes the log line, releases all the flow holds, takes it out of its
 * table's list and frees it (ops->free). */
void udprelay_end(struct udprelay *r);

#endif
