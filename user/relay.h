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
struct relay_away;
struct relay_loops;

/* An idle relay holds only its two read events: the write event, the
 * copy buffer, the pipe, the tagger and the timer exist while they are in
 * use (a writer blocked, bytes held, bulk data, a request header). */
struct relay_dir {
	struct relay *r;
	int from, to;
	struct event *rd, *wr;         /* wr: made when `to` first fills up */
	struct evbuffer *buf;          /* bytes waiting for `to`; NULL: none */
	int pipe[2];
	size_t in_pipe;
	struct http_tagger *tagger;    /* owned; NULL between requests */
	uint64_t bytes;                /* read from `from` (atomic: status reads it) */
	unsigned eof : 1, shut : 1;
	unsigned bulk : 1;             /* splice from now on */
	unsigned tagging : 1;          /* HTTP: a tagger parses the next bytes */
};

/* err: NULL when both directions ended cleanly; valid only during the
 * call. */
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
	/* A tagger for the next request of a tagging relay (arg: the
	 * relay's); NULL on ENOMEM.  Both callbacks may run on any loop. */
	struct http_tagger *(*new_tagger)(void *arg);
	/* The loops bulk relays spread over (relayloop.h); NULL: one. */
	struct relay_loops *loops;
};

struct relay {
	struct relay_dir up, down;     /* up: client -> server */
	relay_done_cb done;
	void *arg;
	int use_splice;
	int finished;
	struct event_base *base;
	struct relay_limits *lim;
	struct event *timer;           /* header deadline and idle timeout */
	uint64_t last_ms;              /* last byte either way (monotonic) */
	uint64_t header_ms;            /* when the pending header began; 0: none */
	size_t header_mem;             /* this relay's share of lim->header_mem */
	struct relay_away *away;       /* bulk, with lim->loops: where it runs */
	unsigned move : 1;             /* placed on another loop: go there */
};

/* Takes no ownership of the fds: the done callback closes them (after
 * relay_free).  tag: requests client->server get tagged, by taggers from
 * lim->new_tagger, one while a request is being parsed; lim outlives the
 * relay. */
int relay_start(struct relay *r, struct event_base *base, int client, int server,
		int tag, int use_splice,
		struct relay_limits *lim, relay_done_cb done, void *arg);
void relay_free(struct relay *r);
/* Stops it where it runs (and brings it back to the main loop): it moves
 * no more bytes, and its counts can be read. */
void relay_halt(struct relay *r);

/* For relayloop.c: a relay's events freed (on the loop that has them),
 * made again on base and its bytes moving (on base's thread), and its end
 * told (on the main loop). */
void relay_suspend(struct relay *r);
void relay_resume(struct relay *r, struct event_base *base);
void relay_deliver(struct relay *r, const char *err);

#endif
