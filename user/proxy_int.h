/* The insides of a TCP session, shared by proxy.c (accept, records,
 * relay, close) and proxy_route.c (its name, the policy's decision, the
 * connection out).  Nothing else includes this. */
#ifndef SPROXY_PROXY_INT_H
#define SPROXY_PROXY_INT_H
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "connector.h"
#include "live.h"
#include "relay.h"
#include "rules.h"
#include "sniff.h"
#include "sproxy.h"

struct daemon;
struct evconnlistener;
struct event;
struct policy_req;
struct policyset;
struct sniff_wait;
struct upstream;

struct session;

struct proxy_listener {
	struct daemon *d;
	struct sockaddr_storage addr;   /* bound; wildcard: ask each socket */
	int wildcard;
	int transparent;            /* TPROXY: the local address is the destination */
	struct evconnlistener *l;
	struct event *pause;        /* re-enables accepting after EMFILE */
	struct session *sessions;   /* open ones, ended when the listener goes */
	uint64_t netns, netns_ino;  /* another namespace's listener; 0: the daemon's */
};

/* An address in the room its family needs, not sockaddr_storage's 128
 * bytes: there are two in every session. */
union sa46 {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* What an idle relayed connection costs is mostly this, so it holds only
 * what a relay needs for the log and status: names are allocated when
 * there are any, the route is a shared string, and the relay's own parts
 * come and go with the bytes (relay.h). */
struct session {
	struct daemon *d;
	struct proxy_listener *pl;
	struct session *prev, *next;          /* the listener's sessions */
	struct session *hnext;                /* the cookie table's chain */
	uint64_t cookie;                      /* the application socket's; 0: none */
	int cfd, sfd;
	union sa46 src;                       /* the application's end */
	union sa46 dst;                       /* the original destination; 0: unknown */
	char *host;                           /* its name; NULL: none */
	struct sproxy_proc proc;
	struct connect_req *creq;
	struct sniff_wait *sw;                /* peeking for a name */
	struct policy_req *preq;              /* deciding, a name being looked up */
	/* The route, kept as decided: a reload does not change it. */
	const struct upstream *up;            /* NULL: direct */
	struct policyset *ps;                 /* holds up (and via) while it lives */
	const char *route;                    /* shared (proxy_route.c) */
	const char *via;                      /* the route, for the log */
	int rule;
	enum sniff_kind sniffed;              /* host came from the first bytes */
	unsigned have_proc : 1, decided : 1, sniff_tried : 1;
	unsigned relaying : 1;
	unsigned transparent : 1;             /* came through TPROXY */
	struct timespec start;
	struct live live;                     /* for status, once routed */
	struct relay relay;
};

/* proxy.c */
/* Ends a session: one log line, both sockets closed (reset: with RST). */
void session_close(struct session *s, const char *result, const char *err, int reset);
/* session_close, with a reset when err is set. */
void session_end(struct session *s, const char *result, const char *err);
/* The connector's callback: relays on a connected fd. */
void session_connected(int fd, const char *errmsg, void *arg);

/* proxy_route.c */
/* Original destination and process known (not DNS): the name (FakeIP's,
 * or sniffed), the policy's decision, then out, rejected or refused. */
void session_route(struct session *s);
/* What session_route left running (a sniff, a lookup). */
void session_route_cancel(struct session *s);
/* The address in a sockaddr_storage, for the modules that take one. */
void sa46_to_storage(const union sa46 *a, struct sockaddr_storage *ss);
/* The FakeIP name, unless it came from sniffing. */
static inline const char *session_fake_host(const struct session *s)
{
	return s->host && !s->sniffed ? s->host : NULL;
}

#endif
