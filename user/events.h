/* What wakes the running daemon besides traffic: the BPF side's ring
 * buffer, and signals. */
#ifndef SPROXY_EVENTS_H
#define SPROXY_EVENTS_H

struct daemon;
struct events;

/* Routes libevent's own messages through our log. */
void events_route_libevent_log(void);
/* Starts consuming the ring buffer and handling SIGINT/SIGTERM (stop the
 * loop) and SIGHUP (reopen the connection log).  NULL, logged, on failure. */
struct events *events_start(struct daemon *d);
void events_free(struct events *e);
/* Handles what the ring buffer holds now (at exit, before the log ends). */
void events_drain(struct events *e);

#endif
