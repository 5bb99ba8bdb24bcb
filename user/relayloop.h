/* Event loops beside the main one (--threads), for bulk relays.
 *
 * Every connection starts on the main loop, where accepting, routing,
 * handshakes, DNS and logging live, and stays there while it only
 * exchanges short messages: moving it would cost more than it saves.  When
 * a direction of a relay turns bulk (a read fills the copy buffer), the
 * relay is placed on whichever loop holds the fewest bulk relays; on
 * another loop's thread it then moves its bytes until it ends, and its end
 * is handed back to the main loop, which logs it and closes it.  The main
 * loop takes a relay back at once when it must end it first (shutdown, a
 * namespace that went away).
 *
 * A relay on another loop touches nothing shared but the header budget
 * (atomic), its byte counters (read by status, atomic) and the log. */
#ifndef SPROXY_RELAYLOOP_H
#define SPROXY_RELAYLOOP_H
#include <stddef.h>

struct event_base;
struct relay;
struct relay_loops;

/* n loops in all, the main one (base) included: n - 1 threads.  Call
 * after the privilege drop: capabilities are per thread.  NULL with err
 * set on failure; n < 2 gives NULL with no error: one loop, no threads. */
struct relay_loops *relay_loops_new(struct event_base *base, int n, char *err, size_t errlen);
/* After every relay is freed: stops and joins the threads. */
void relay_loops_free(struct relay_loops *l);
/* Loops in all, and per loop (0: the main one) the bulk relays on it and
 * the relays it has taken since the start. */
int relay_loops_count(const struct relay_loops *l);
void relay_loops_stats(const struct relay_loops *l, int i, unsigned long *now,
		       unsigned long *taken);
/* The default loop count: half the CPUs this process may run on, at
 * least one. */
int relay_loops_default(void);

/* relay.c's side, on the main loop. */
/* A relay turned bulk: 1 when it goes to another loop (the caller then
 * frees its events and calls relay_loops_move), 0 when it stays, -1 out of
 * memory (it stays). */
int relay_loops_place(struct relay_loops *l, struct relay *r);
void relay_loops_move(struct relay *r);
/* From relay_free: a relay on another loop comes back first (its events
 * freed there), and it leaves the count. */
void relay_loops_release(struct relay *r);
/* On the relay's own loop: 1 when that is not the main one, and its end
 * is then handed back with relay_loops_finished (err copied). */
int relay_loops_away(const struct relay *r);
void relay_loops_finished(struct relay *r, const char *err);

#endif
