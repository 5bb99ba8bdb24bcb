/* Moves bytes both ways between two connected sockets.  Half-close
 * propagates; memory per direction is bounded (reading stops while the
 * other side is not writable).  Bytes that need no rewriting go through a
 * pipe with splice(2), never through user space; the client->server
 * direction may pass through an HTTP tagger. */
#ifndef SPROXY_RELAY_H
#define SPROXY_RELAY_H
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

struct relay {
	struct relay_dir up, down;     /* up: client -> server */
	relay_done_cb done;
	void *arg;
	int use_splice;
	int finished;
	char err[128];
};

/* Takes no ownership of the fds: the done callback closes them (after
 * relay_free).  up_tagger is owned by the relay. */
int relay_start(struct relay *r, struct event_base *base, int client, int server,
		struct http_tagger *up_tagger, int use_splice, relay_done_cb done,
		void *arg);
void relay_free(struct relay *r);

#endif
