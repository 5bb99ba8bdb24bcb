#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "http.h"
#include "relay.h"
#include "relayloop.h"

/* The splice settings are the ones a bare relay on the same path
 * (tests/bench/minrelay.c, the bench's anchor column) measured best here:
 * a 1 MiB pipe (eight streams and an HTTP download move a tenth more than
 * with 64 KiB; 256 KiB falls between), the kernel's autotuned socket
 * buffers (fixed SO_SNDBUF/SO_RCVBUF of 1 or 4 MiB were no faster), and no
 * SPLICE_F_MORE (the kernel already marks all but a splice's last chunk;
 * the flag changed nothing measurable).  README, Performance, has the grid. */
#define COPY_BUF    (16 * 1024)
#define PIPE_SIZE   (1024 * 1024)
#define MAX_ROUNDS  16          /* reads per wakeup: fairness between sessions */

static void pump(struct relay_dir *d);

/* The done callback's error text: it is read during the call only (or
 * copied, on another loop), and one relay of a loop ends at a time, so no
 * relay carries its own. */
static __thread char err_text[128];

/* The end: told at once on the main loop; from another loop, handed back
 * to the main one, which tells it. */
static void finish(struct relay *r, const char *err)
{
	r->finished = 1;
	if (relay_loops_away(r)) {
		relay_suspend(r);
		relay_loops_finished(r, err);
		return;
	}
	r->done(r, err, r->arg);
}

void relay_deliver(struct relay *r, const char *err)
{
	r->done(r, err, r->arg);
}

static void fail(struct relay_dir *d, const char *what, int err)
{
	struct relay *r = d->r;

	if (r->finished)
		return;
	snprintf(err_text, sizeof(err_text), "%s: %s", what, strerror(err));
	finish(r, err_text);
}

/* Coarse is enough for deadlines in seconds, and costs no syscall. */
static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Milliseconds until the nearest deadline from now, or UINT64_MAX. */
static uint64_t next_deadline(const struct relay *r, uint64_t now)
{
	uint64_t left = UINT64_MAX, at;

	if (r->header_ms && r->lim->header_timeout) {
		at = r->header_ms + r->lim->header_timeout * 1000ull;
		left = at > now ? at - now : 0;
	}
	if (r->lim->idle_timeout) {
		at = r->last_ms + r->lim->idle_timeout * 1000ull;
		at = at > now ? at - now : 0;
		if (at < left)
			left = at;
	}
	return left;
}

static void arm(struct relay *r, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (ms != UINT64_MAX)
		evtimer_add(r->timer, &tv);
}

/* The timer is armed for the nearest deadline when it was set; bytes that
 * moved since only push the idle one out, so a timer that fires early
 * re-arms for what is left instead of being re-armed on every read. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	uint64_t now = now_ms(), left;

	(void)fd;
	(void)what;
	if (r->finished)
		return;
	left = next_deadline(r, now);
	if (left) {
		arm(r, left);
		return;
	}
	if (r->header_ms && r->lim->header_timeout &&
	    now - r->header_ms >= r->lim->header_timeout * 1000ull)
		snprintf(err_text, sizeof(err_text), "request header not complete after %us",
			 r->lim->header_timeout);
	else
		snprintf(err_text, sizeof(err_text), "idle for %us", r->lim->idle_timeout);
	finish(r, err_text);
}

/* Keeps this relay's header buffer in the shared count (relays on other
 * loops count there too), and starts or stops the header deadline.  Past
 * the budget, the relay that grew the count sends what it holds untagged
 * and tags no more: memory stays bounded, and the connection still works. */
static int header_account(struct relay *r)
{
	struct http_tagger *t = r->up.tagger;
	size_t mem = t ? http_tagger_mem(t) : 0, held = t ? http_tagger_held(t) : 0;
	struct relay_limits *lim = r->lim;
	int grew = mem > r->header_mem;
	size_t total = __atomic_add_fetch(&lim->header_mem, mem - r->header_mem,
					  __ATOMIC_RELAXED);

	r->header_mem = mem;
	if (held && grew && total > lim->header_budget) {
		if (http_tagger_flush(t, r->up.buf) < 0)
			return -1;
		__atomic_sub_fetch(&lim->header_mem, r->header_mem, __ATOMIC_RELAXED);
		r->header_mem = 0;
		if (lim->over_budget)
			lim->over_budget(r, held, r->arg);
		held = 0;
	}
	if (!held) {
		r->header_ms = 0;
		/* Kept only for an idle timeout: between requests a relay
		 * needs no timer. */
		if (r->timer && !lim->idle_timeout) {
			event_free(r->timer);
			r->timer = NULL;
		}
	} else if (!r->header_ms && lim->header_timeout) {
		r->header_ms = r->last_ms;
		if (!r->timer)
			r->timer = evtimer_new(r->base, on_timer, r);
		if (!r->timer)
			return -1;
		arm(r, next_deadline(r, r->last_ms));
	}
	return 0;
}

static void maybe_done(struct relay *r)
{
	if (!r->finished && r->up.shut && r->down.shut)
		finish(r, NULL);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pump(arg);
}

/* Writes what is pending.  1: all out, 0: `to` is full, -1: failed. */
static int drain(struct relay_dir *d)
{
	while (d->buf && evbuffer_get_length(d->buf)) {
		int n = evbuffer_write(d->buf, d->to);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			fail(d, d == &d->r->up ? "write to server" : "write to client", errno);
			return -1;
		}
	}
	while (d->in_pipe) {
		ssize_t n = splice(d->pipe[0], NULL, d->to, NULL, d->in_pipe,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			fail(d, d == &d->r->up ? "write to server" : "write to client", errno);
			return -1;
		}
		d->in_pipe -= (size_t)n;
	}
	return 1;
}

/* A direction starts by copying: short exchanges (requests, replies,
 * handshakes) then cost no pipe.  Once a read fills the whole buffer the
 * stream is bulk, and from then on bytes that need no rewriting go through
 * a pipe with splice(2), without entering user space. */
static int want_splice(struct relay_dir *d)
{
	if (!d->r->use_splice || !d->bulk)
		return 0;
	if (d->tagger && http_tagger_verbatim(d->tagger) == 0)
		return 0;
	if (d->pipe[0] < 0) {
		if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
			d->pipe[0] = d->pipe[1] = -1;
			d->bulk = 0;      /* out of fds: keep copying */
			return 0;
		}
		/* Fewer, larger splices; the pipe only holds pages while full. */
		fcntl(d->pipe[1], F_SETPIPE_SZ, PIPE_SIZE);
	}
	return 1;
}

/* Reads once from `from`.  >0 bytes moved, 0 EOF, -1 would block, -2
 * failed.  *more: the read was full, so more may be waiting. */
static ssize_t take(struct relay_dir *d, int *more)
{
	char tmp[COPY_BUF];
	ssize_t n;

	/* A tagging direction at rest holds no tagger: the next request
	 * gets a fresh one. */
	if (d->tagging && !d->tagger && !(d->tagger = d->r->lim->new_tagger(d->r->arg))) {
		fail(d, "relay", ENOMEM);
		return -2;
	}
	if (want_splice(d)) {
		uint64_t v = d->tagger ? http_tagger_verbatim(d->tagger) : UINT64_MAX;
		size_t len = v < PIPE_SIZE ? (size_t)v : PIPE_SIZE;

		n = splice(d->from, NULL, d->pipe[1], NULL, len,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			d->in_pipe += (size_t)n;
			if (d->tagger)
				http_tagger_skip(d->tagger, (uint64_t)n);
		}
		*more = n == (ssize_t)len;
	} else {
		if (!d->buf && !(d->buf = evbuffer_new())) {
			fail(d, "relay", ENOMEM);
			return -2;
		}
		n = read(d->from, tmp, sizeof(tmp));
		if (n > 0) {
			int rc = d->tagger ? http_tagger_feed(d->tagger, tmp, (size_t)n, d->buf)
					   : evbuffer_add(d->buf, tmp, (size_t)n);
			if (rc < 0) {
				fail(d, "relay", ENOMEM);
				return -2;
			}
		}
		*more = n == (ssize_t)sizeof(tmp);
		if (*more && !d->bulk) {
			d->bulk = 1;
			/* Placed once, when the first direction turns bulk. */
			if (d->r->lim->loops && !d->r->away &&
			    relay_loops_place(d->r->lim->loops, d->r) == 1)
				d->r->move = 1;
		}
	}
	if (n > 0) {
		__atomic_store_n(&d->bytes, d->bytes + (uint64_t)n, __ATOMIC_RELAXED);
		d->r->last_ms = now_ms();
		if (d->tagger && header_account(d->r) < 0) {
			fail(d, "relay", ENOMEM);
			return -2;
		}
		return n;
	}
	if (n == 0)
		return 0;
	if (errno == EAGAIN || errno == EINTR)
		return -1;
	fail(d, d == &d->r->up ? "read from client" : "read from server", errno);
	return -2;
}

/* Waiting for `from` with nothing pending: what only moving bytes need
 * goes, so that an idle relay holds its two read events and little else.
 * A tagger that went raw for good goes too: the rest passes plain. */
static void rest(struct relay_dir *d)
{
	if (d->buf && !evbuffer_get_length(d->buf)) {
		evbuffer_free(d->buf);
		d->buf = NULL;
	}
	if (d->tagger && (http_tagger_at_rest(d->tagger) || http_tagger_is_raw(d->tagger))) {
		if (http_tagger_is_raw(d->tagger))
			d->tagging = 0;
		if (!http_tagger_held(d->tagger)) {
			http_tagger_free(d->tagger);
			d->tagger = NULL;
		}
	}
	event_add(d->rd, NULL);
}

static void pump(struct relay_dir *d)
{
	struct relay *r = d->r;
	int rounds = 0, more = 1;

	while (!r->finished) {
		int rc;

		if (r->move) {               /* to the loop it was placed on */
			r->move = 0;
			relay_suspend(r);
			relay_loops_move(r);
			return;
		}
		rc = drain(d);

		if (rc < 0)
			return;
		if (rc == 0) {               /* wait for `to`; stop reading */
			if (!d->wr && !(d->wr = event_new(r->base, d->to, EV_WRITE | EV_PERSIST,
							   on_read, d))) {
				fail(d, "relay", ENOMEM);
				return;
			}
			event_del(d->rd);
			event_add(d->wr, NULL);
			return;
		}
		if (d->wr)
			event_del(d->wr);
		if (d->eof) {
			if (d->tagger && !d->buf && !(d->buf = evbuffer_new())) {
				fail(d, "relay", ENOMEM);
				return;
			}
			if (d->tagger && http_tagger_flush(d->tagger, d->buf) == 0) {
				header_account(r);
				if (evbuffer_get_length(d->buf))
					continue;
			}
			if (!d->shut) {
				struct relay_dir *o = d == &r->up ? &r->down : &r->up;

				/* Both ways are done: the close that follows
				 * sends the FIN, no shutdown needed. */
				if (!o->shut)
					shutdown(d->to, SHUT_WR);
				d->shut = 1;
			}
			maybe_done(r);
			return;
		}
		/* A short read emptied the socket: epoll says when there is
		 * more, without a read that only returns EAGAIN. */
		if (!more) {
			rest(d);
			return;
		}
		if (++rounds > MAX_ROUNDS) {
			event_add(d->rd, NULL);
			return;
		}
		ssize_t n = take(d, &more);

		if (n == -2)
			return;
		if (n == -1) {
			rest(d);
			return;
		}
		if (n == 0) {
			event_del(d->rd);
			d->eof = 1;
		}
	}
}

static int dir_init(struct relay *r, struct relay_dir *d, struct event_base *base,
		    int from, int to)
{
	d->r = r;
	d->from = from;
	d->to = to;
	d->pipe[0] = d->pipe[1] = -1;
	d->rd = event_new(base, from, EV_READ | EV_PERSIST, on_read, d);
	return d->rd ? 0 : -1;
}

int relay_start(struct relay *r, struct event_base *base, int client, int server,
		int tag, int use_splice,
		struct relay_limits *lim, relay_done_cb done, void *arg)
{
	memset(r, 0, sizeof(*r));
	r->up.pipe[0] = r->up.pipe[1] = r->down.pipe[0] = r->down.pipe[1] = -1;
	r->done = done;
	r->arg = arg;
	r->use_splice = use_splice;
	r->up.tagging = tag && lim->new_tagger;
	r->base = base;
	r->lim = lim;
	r->last_ms = now_ms();
	if (dir_init(r, &r->up, base, client, server) < 0 ||
	    dir_init(r, &r->down, base, server, client) < 0)
		return -1;
	/* Tagged relays get their timer when a header starts: idle ones
	 * without an idle timeout carry none. */
	if (lim->idle_timeout) {
		r->timer = evtimer_new(base, on_timer, r);
		if (!r->timer)
			return -1;
		arm(r, next_deadline(r, r->last_ms));
	}
	event_add(r->up.rd, NULL);
	event_add(r->down.rd, NULL);
	return 0;
}

static void dir_free(struct relay_dir *d)
{
	if (d->rd)
		event_free(d->rd);
	if (d->wr)
		event_free(d->wr);
	if (d->buf)
		evbuffer_free(d->buf);
	if (d->pipe[0] >= 0) {
		close(d->pipe[0]);
		close(d->pipe[1]);
	}
	if (d->tagger)
		http_tagger_free(d->tagger);
	memset(d, 0, sizeof(*d));
	d->pipe[0] = d->pipe[1] = -1;
}

/* Events only: buffers, pipes and taggers travel with the relay. */
void relay_suspend(struct relay *r)
{
	struct relay_dir *dirs[2] = { &r->up, &r->down };

	for (int i = 0; i < 2; i++) {
		if (dirs[i]->rd)
			event_free(dirs[i]->rd);
		if (dirs[i]->wr)
			event_free(dirs[i]->wr);
		dirs[i]->rd = dirs[i]->wr = NULL;
	}
	if (r->timer)
		event_free(r->timer);
	r->timer = NULL;
}

/* Each direction picks up where it was: pump drains what is held (and
 * waits for `to` when it is full), then reads, and sets its events as it
 * would have on the old loop. */
void relay_resume(struct relay *r, struct event_base *base)
{
	r->base = base;
	if (!(r->up.rd = event_new(base, r->up.from, EV_READ | EV_PERSIST, on_read, &r->up)) ||
	    !(r->down.rd = event_new(base, r->down.from, EV_READ | EV_PERSIST, on_read, &r->down)) ||
	    ((r->lim->idle_timeout || r->header_ms) &&
	     !(r->timer = evtimer_new(base, on_timer, r)))) {
		fail(&r->up, "relay", ENOMEM);
		return;
	}
	if (r->timer)
		arm(r, next_deadline(r, now_ms()));
	pump(&r->up);
	if (!r->finished)
		pump(&r->down);
}

void relay_halt(struct relay *r)
{
	if (r->away)
		relay_loops_release(r);
	relay_suspend(r);
}

void relay_free(struct relay *r)
{
	relay_halt(r);
	if (r->lim)
		__atomic_sub_fetch(&r->lim->header_mem, r->header_mem, __ATOMIC_RELAXED);
	r->header_mem = 0;
	dir_free(&r->up);
	dir_free(&r->down);
}
