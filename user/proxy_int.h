/* The insides of a TCP session, shared by proxy.c (accept, records,
 * relay, close) and proxy_route.c (its name, the policy's decision, the
 * connection out).  Nothing else includes this. */
#ifndef SPROXY_PROXY_INT_H
#define SPROXY_PROXY_INT_H
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>

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

struct session {
	struct daemon *d;
	struct proxy_listener *pl;
	struct session *prev, *next;          /* the listener's sessions */
	struct session *hnext;                /* the cookie table's chain */
	uint64_t cookie;                      /* the application socket's; 0: none */
	struct sproxy_sockopts opts;          /* the application's, for sfd */
	int cfd, sfd;
	struct sockaddr_storage src;          /* the application's end */
	struct target t;
	struct sproxy_proc proc;
	int have_proc;
	struct connect_req *creq;
	struct sniff_wait *sw;                /* peeking for a name */
	struct policy_req *preq;              /* deciding, a name being looked up */
	char sniffed_host[256];
	enum sniff_kind sniffed;
	/* The route, kept as decided: a reload does not change it. */
	int decided, rule;
	enum rule_action action;
	const struct upstream *up;           /* NULL: direct */
	struct policyset *ps;                 /* holds up (and via) while it lives */
	int sniff_tried;
	char route[64];
	const char *via;                      /* the route, for the log */
	struct relay relay;
	int relaying;
	int transparent;                      /* came through TPROXY */
	struct timespec start;
	struct live live;                     /* for status, once routed */
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

#endif
