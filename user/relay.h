/* Moves bytes both ways between two connected sockets.  Half-close
 * propagates; memory per direction is bounded (reading stops while the
 * other side is not writable).  Bytes that need no rewriting go through a
 * pipe with splice(2), never through user space; the client->server
 * direction may pass through an HTTP tagger.  A relay ends when a request
 * header takes too long or nothing moves for too long, and header buffers
 * of all relays together stay within a budget. */
#ifndef SPROXY_RELAY_H
#define SPROXY_RELAY_H
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct event;
struct http_tagger;
struct relay;

struct relay_dir {
	struct relay *r;
	int from, to;
	struct event *rd, *wr;
	struct evbuffer *buf;          /* rewritten bytes waiting for `to` */
	int pipe[2];
	size_t in_pipe;
	struct http_tagger *tagger;    /* owned; NULL = plain */
	uint64_t bytes;                /* read from `from` */
	int eof, shut;
	int bulk;                      /* splice from now on */
};

/* err: NULL when both directions ended cleanly. */
typedef void (*relay_done_cb)(struct relay *r, const char *err, void *arg);

/* Shared by every relay of a daemon. */
struct relay_limits {
	unsigned header_timeout;       /* s to complete a request header; 0: none */
	unsigned idle_timeout;         /* s without a byte either way; 0: none */
	size_t header_budget;          /* bytes of header buffers, all relays */
	size_t header_mem;             /* bytes they take now */
	/* A relay whose header pushed header_mem over the budget: its held
	 * bytes went out untagged, and it stays untagged (arg: the relay's). */
	void (*over_budget)(struct relay *r, size_t held, void *arg);
};

struct relay {
	struct relay_dir up, down;     /* up: client -> server */
	relay_done_cb done;
	void *arg;
	int use_splice;
	int finished;
	char err[128];
	struct event_base *base;
	struct relay_limits *lim;
	struct event *timer;           /* header deadline and idle timeout */
	uint64_t last_ms;              /* last byte either way (monotonic) */
	uint64_t header_ms;            /* when the pending header began; 0: none */
	size_t header_mem;             /* this relay's share of lim->header_mem */
};

/* Takes no ownership of the fds: the done callback closes them (after
 * relay_free).  up_tagger is owned by the relay; lim outlives it. */
int relay_start(struct relay *r, struct event_base *base, int client, int server,
		struct http_tagger *up_tagger, int use_splice,
		struct relay_limits *lim, relay_done_cb done, void *arg);
void relay_free(struct relay *r);

#endif
