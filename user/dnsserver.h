/* The built-in DNS server: answers the queries the BPF hooks capture.
 *
 *  - A / AAAA (class IN) get fake addresses from the FakeIP pool (TTL
 *    cfg->ttl, 1 s by default), unless FakeIP is disabled, the name is an
 *    IP literal, is under an excluded suffix, or is under "arpa" or
 *    "localhost": those are forwarded.  So is a new name when no address
 *    has been unused for TTL + DNS_FAKEIP_GRACE (none is reused while
 *    clients may hold it) or when its process has had
 *    max_names_per_process new names within that time (logged).
 *  - PTR for a fake address answers its name (NXDOMAIN when unmapped);
 *    other PTRs are forwarded.
 *  - Everything else is forwarded to the real resolvers unchanged except
 *    for the ID: UDP first, TCP when the answer is truncated; resolvers
 *    tried in order with a per-attempt timeout (default 2 s); SERVFAIL
 *    once the total bound (default 5 s) passes.
 *  - Malformed queries get FORMERR (NOTIMP for opcodes other than QUERY
 *    and for zone transfers) when their ID could be read, else nothing.
 *
 * Runs on the caller's libevent loop; never blocks it.  Every socket it
 * opens itself gets SO_MARK = cfg->mark (when non-zero) so the BPF hooks
 * skip it; evdns's sockets are not marked (the daemon's pid is skipped). */
#ifndef SPROXY_DNSSERVER_H
#define SPROXY_DNSSERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;

#define DNS_DEFAULT_TTL             1
#define DNS_DEFAULT_TIMEOUT_MS      5000
#define DNS_DEFAULT_ATTEMPT_MS      2000
#define DNS_DEFAULT_MAX_PENDING     4096
#define DNS_DEFAULT_NAMES_PER_PROCESS 2048
/* Clients may cache an answer past its TTL (browsers up to a minute,
 * Java 30 s) and connect a moment later: a fake address is not given to
 * another name until TTL + this has passed since its last use. */
#define DNS_FAKEIP_GRACE 60

/* An address range over the 128-bit form (IPv4 as ::ffff:a.b.c.d, so an
 * IPv4 /24 has prefixlen 120), as the --bypass map has them. */
struct dns_range {
	uint8_t addr[16];
	unsigned prefixlen;
};

struct dns_config {
	int fakeip_enabled;                 /* 0 = --disable-fakeip */
	const char *v4_range, *v6_range;    /* NULL = fakeip.h defaults */
	size_t pool_size;                   /* 0 = as large as the ranges */
	unsigned ttl;                       /* fake answer TTL, 0 = 1 */
	const char **exclude;               /* suffixes: "lan", ".lan" and */
	size_t n_exclude;                   /* "*.lan" all mean lan and below */
	const struct sockaddr_storage *resolvers;   /* AF_INET/AF_INET6, */
	size_t n_resolvers;                 /* port 0 = 53; copied */
	const char *store_path;             /* NULL = no persistence */
	unsigned timeout_ms;                /* total bound, 0 = 5000 */
	unsigned attempt_timeout_ms;        /* per resolver try, 0 = 2000 */
	size_t max_pending;                 /* forwards in flight, 0 = 4096 */
	uint32_t mark;                      /* SO_MARK for own sockets */
	int verbose;                        /* log every query */
	/* dns_server_resolve refuses answers in loopback, link-local,
	 * unspecified and multicast space and in these ranges, unless
	 * allow_private_answers (--allow-private-answers). */
	const struct dns_range *bypass;     /* copied */
	size_t n_bypass;
	int allow_private_answers;
	/* New FakeIP names one process may get within the reuse hold (TTL
	 * + DNS_FAKEIP_GRACE); past it, real answers.  0 = 2048. */
	size_t max_names_per_process;
};

struct dns_server;

/* Copies everything it needs from cfg.  Loads the FakeIP store (a bad or
 * unreadable store is logged and ignored).  Without resolvers, forwarded
 * queries get SERVFAIL (a warning is logged). */
struct dns_server *dns_server_new(struct event_base *base,
				  const struct dns_config *cfg, char *err,
				  size_t errlen);
/* Saves the store, cancels every pending query and resolve without
 * calling their callbacks.  evdns delivers its cancellations on the next
 * loop pass: run event_base_loop(base, EVLOOP_NONBLOCK) once before
 * event_base_free, or a few bytes per in-flight resolve stay allocated. */
void dns_server_free(struct dns_server *srv);

/* Reply callback: reply == NULL, len == 0 means drop (send nothing).
 * reply is valid during the call only.  The callback may free the server
 * or cancel other queries. */
typedef void (*dns_reply_cb)(const uint8_t *reply, size_t len, void *arg);
struct dns_pending;
/* Answers query (copied; the caller may free it on return).  tcp: it came
 * over TCP (no 512-byte limit; the caller does the length framing).  cb
 * is called exactly once unless cancelled; it may be called before this
 * returns, which then returns NULL.  So: NULL <=> cb already called. */
struct dns_pending *dns_server_query(struct dns_server *srv,
				     const uint8_t *query, size_t len,
				     int tcp, dns_reply_cb cb, void *arg);
/* The same for a query from the process tgid (from the connection's
 * record; 0 = unknown): it counts against that process's
 * max_names_per_process. */
struct dns_pending *dns_server_query_from(struct dns_server *srv,
					  uint32_t tgid, const uint8_t *query,
					  size_t len, int tcp, dns_reply_cb cb,
					  void *arg);
/* Only before cb ran; cb will not be called. */
void dns_pending_cancel(struct dns_pending *p);

/* Inside a dns_reply_cb only (read it before freeing the server): why the
 * query failed, for the connection log ("malformed query (5 bytes):
 * shorter than a header", "no usable answer within 5000 ms (last:
 * 192.0.2.1:53: no answer within 2000 ms)", "every resolver failed (last:
 * 192.0.2.1:53 answered REFUSED)"), or NULL when it got a real answer
 * (fake or relayed, NXDOMAIN included).  Also set for drops. */
const char *dns_server_reply_error(const struct dns_server *srv);

/* For the proxy: the name behind a fake address (NULL if not in a fake
 * range or not mapped; *in_fake_range says which, may be NULL).  Marks the
 * mapping used.  AF_INET or AF_INET6; v4-mapped IPv6 counts as IPv4.  The
 * string is valid until the next query is answered: copy it. */
const char *dns_server_fake_name(struct dns_server *srv,
				 const struct sockaddr *addr,
				 int *in_fake_range);

/* How many names the FakeIP pool holds, of how many.  0, or -1 when FakeIP
 * is off. */
int dns_server_fakeip_fill(const struct dns_server *srv, size_t *used, size_t *capacity);

/* Resolves name for a connection through the real resolvers (evdns),
 * bounded by cfg->timeout_ms.  family AF_INET, AF_INET6 or AF_UNSPEC
 * (IPv4 preferred).  cb is always called later from the loop, never
 * before this returns, exactly once unless cancelled: err == 0 with one
 * address (port 0; valid during the call only), or err an errno value
 * (ENOENT no such name or no address of that family, ETIMEDOUT, EAGAIN
 * resolver failure, ENOMEM, EINVAL, ELOOP every answer was one of our
 * fake addresses: the resolvers ask us, EACCES every answer was private
 * (see dns_config) and refused) with errmsg naming the name and the
 * cause.  An answer in a fake range is never used; a private one only
 * with allow_private_answers.  Returns NULL only when it could not start (no memory): then cb
 * is not called. */
typedef void (*dns_resolve_cb)(int err, const char *errmsg,
			       const struct sockaddr *addr, socklen_t addrlen,
			       void *arg);
struct dns_resolving;
struct dns_resolving *dns_server_resolve(struct dns_server *srv,
					 const char *name, int family,
					 dns_resolve_cb cb, void *arg);
/* Only before cb ran; cb will not be called. */
void dns_resolving_cancel(struct dns_resolving *r);

/* cb(arg, name, fake) after each fake A/AAAA answer is built, for the
 * kernel fast path to learn the name's real address; NULL: none. */
typedef void (*dns_fake_cb)(void *arg, const char *name, const struct sockaddr *fake);
void dns_server_on_fake(struct dns_server *srv, dns_fake_cb cb, void *arg);

/* Reads "nameserver" lines of a resolv.conf (path NULL = /etc/resolv.conf)
 * into out (port 53).  Returns how many, 0 when none or unreadable. */
size_t dns_resolv_conf(const char *path, struct sockaddr_storage *out,
		       size_t max);

#endif
