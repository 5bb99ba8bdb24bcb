/* The registry of live TCP sessions and UDP flows, for `status` and `top`.
 * An entry lives inside the session or flow it describes and points at
 * that owner's own fields, so that reading it costs the data path nothing
 * beyond linking and unlinking. */
#ifndef SPROXY_LIVE_H
#define SPROXY_LIVE_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>

struct sproxy_proc;

struct live {
	struct live *prev, *next;
	struct live_list *list;               /* NULL: not linked */
	uint64_t id;                          /* unique while the daemon runs */
	const char *proto;                    /* "tcp", "udp", "dns" */
	const struct sproxy_proc *proc;       /* NULL: unknown */
	const struct sockaddr *src;           /* the application's end */
	const struct sockaddr *dst;           /* the original destination */
	const char *host;                     /* its name; "" when none */
	const char *const *via;               /* the upstream's name; NULL: none */
	const uint64_t *up, *down;            /* bytes app->server, server->app */
	const struct timespec *start;         /* CLOCK_MONOTONIC */
};

struct live_list {
	struct live *head;
	size_t n;
	uint64_t next_id;
};

/* Links e (its fields set by the owner) at the head of l; a no-op when
 * it is linked already. */
void live_add(struct live_list *l, struct live *e);
/* Unlinks e; a no-op when it is not linked. */
void live_del(struct live *e);

#endif
