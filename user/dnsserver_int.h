/* What the parts of the built-in DNS server share: dnsserver.c (set-up,
 * the query dispatcher, logging), dnsforward.c (forwarding to the real
 * resolvers), dnsanswer.c (FakeIP answers), dnsresolve.c (names resolved
 * for the proxy) and dnsstore.c (when the FakeIP store is written).
 * Not for the rest of the daemon: it uses dnsserver.h. */
#ifndef SPROXY_DNSSERVER_INT_H
#define SPROXY_DNSSERVER_INT_H

#include "dns.h"
#include "dnsserver.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

struct evdns_base;
struct event;

/* The store is written at most this often, and at exit. */
#define DNS_STORE_INTERVAL 30
#define DNS_PROC_SLOTS 1024

struct proc_names {
	uint32_t tgid;                     /* 0: free */
	unsigned count;                    /* new names since since */
	uint64_t since;                    /* dns_now_seconds() */
};

struct dns_server {
	struct event_base *base;
	struct fakeip_pool *pool;          /* NULL: FakeIP disabled */
	char **exclude;                    /* normalised suffixes */
	size_t n_exclude;
	struct sockaddr_storage *resolvers;
	size_t n_resolvers;
	char *store_path;
	unsigned ttl, timeout_ms, attempt_ms;
	size_t max_pending, n_pending;
	uint32_t mark;
	int verbose, mark_warned;
	unsigned hold;                     /* ttl + DNS_FAKEIP_GRACE */
	unsigned names_per_process;
	uint32_t query_tgid;               /* of the query being answered */
	dns_fake_cb on_fake;               /* see dns_server_on_fake */
	void *on_fake_arg;
	struct proc_names *procs;          /* DNS_PROC_SLOTS */
	struct dns_range *bypass;          /* refused answers, see dnsresolve.c */
	size_t n_bypass;
	int allow_private;
	struct evdns_base *evdns;
	struct event *save_timer;
	struct dns_pending *pending;       /* forwards in flight */
	struct dns_resolving *resolving;   /* resolves not yet delivered */
	const char *reply_err;             /* see dns_server_reply_error */
	char errbuf[400];
	time_t warned_at;                  /* failure warnings: one a second */
	unsigned long warn_suppressed;
	uint8_t rxbuf[DNS_MSG_MAX + 1];
};

void dns_log(const struct dns_server *srv, int debug, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
uint64_t dns_now_seconds(void);          /* CLOCK_MONOTONIC */
/* Failures every query can hit: one line a second, with a count. */
void dns_warn_limited(struct dns_server *srv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
const char *dns_sa_str(const struct sockaddr_storage *ss, char *buf, size_t cap);
socklen_t dns_sa_len(const struct sockaddr_storage *ss);
/* SO_MARK = srv->mark on a socket of our own. */
void dns_set_mark(struct dns_server *srv, int fd);

/* Replies: every answer goes through these, so that
 * dns_server_reply_error tells the callback why. */
void dns_set_reply_error(struct dns_server *srv, const char *error);
void dns_deliver(struct dns_server *srv, dns_reply_cb cb, void *arg,
		 const uint8_t *msg, size_t len, const char *error);
void dns_reply_error(struct dns_server *srv, const struct dns_query *q,
		     int rcode, dns_reply_cb cb, void *arg, const char *error);

/* dnsforward.c: sends q to the resolvers; NULL when cb was already called. */
struct dns_pending *dns_forward(struct dns_server *srv,
				const struct dns_query *q, const uint8_t *query,
				size_t len, int tcp, dns_reply_cb cb, void *arg);

/* dnsanswer.c: 1 when answered from the pool, 0 when it needs a real one. */
int dns_answer_fake(struct dns_server *srv, const struct dns_query *q,
		    dns_reply_cb cb, void *arg);
int dns_answer_ptr(struct dns_server *srv, const struct dns_query *q,
		   dns_reply_cb cb, void *arg);

/* dnsresolve.c: the evdns base for dns_server_resolve.  0 or -1. */
int dns_resolve_setup(struct dns_server *srv);

/* dnsstore.c: writes the FakeIP store now when it changed; schedules a
 * write for later. */
void dns_store_save(struct dns_server *srv);
void dns_store_schedule(struct dns_server *srv);
/* Loads the store at start (0, or -1 with err); saves it at the end. */
int dns_store_open(struct dns_server *srv, char *err, size_t errlen);
void dns_store_close(struct dns_server *srv);

#endif
