/* Waiting, briefly, for a client's first bytes to read a name in them
 * (sniff.c).  The bytes are only peeked at: the relay reads them later as
 * if nobody had looked. */
#ifndef SPROXY_SNIFFWAIT_H
#define SPROXY_SNIFFWAIT_H
#include "sniff.h"

struct event_base;
struct sniff_wait;

/* host: the name, or NULL (nothing came within the wait, the client
 * closed, or its bytes name nothing). */
typedef void (*sniff_done_cb)(const char *host, enum sniff_kind kind, void *arg);

/* Watches fd for up to timeout_ms; cb runs once, from the event loop,
 * unless sniff_wait_cancel comes first.  NULL: out of memory. */
struct sniff_wait *sniff_wait_start(struct event_base *base, int fd, unsigned timeout_ms,
				    sniff_done_cb cb, void *arg);
void sniff_wait_cancel(struct sniff_wait *w);

#endif
