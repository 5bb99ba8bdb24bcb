/* The kernel fast path, user space's side: the settings and the rules the
 * hooks evaluate (maps), the real addresses of FakeIP names (resolved in
 * the background when a fake answer is given), and the connection log's
 * lines for connections and UDP flows the proxy never saw (path=kernel).
 * The hooks are bpf/fastpath.bpf.h. */
#ifndef SPROXY_FASTPATH_H
#define SPROXY_FASTPATH_H
#include <stddef.h>

struct daemon;
struct fastpath;
struct sproxy_fp_conn;

/* Fills the maps from d->opt and d->policy (its rules and its default
 * route), after loader_load and the DNS server, before the hooks are
 * attached.  With --fast-path off, leaves the path disabled.  NULL,
 * logged, when it cannot. */
struct fastpath *fastpath_start(struct daemon *d);
/* d->policy changed (SIGHUP): the maps again, and FakeIP entries dropped
 * (their name's rule may have changed). */
void fastpath_reload(struct fastpath *fp);
/* A SPROXY_EV_FAST event from the ring buffer: one log line. */
void fastpath_event(struct fastpath *fp, const void *data, size_t size);
/* Logs the UDP flows still open, then frees. */
void fastpath_free(struct fastpath *fp);
/* The kernel-path TCP connections open now (past their SYN), at most
 * max, each passed to fn; how many were.  fp NULL: none. */
typedef void (*fastpath_open_fn)(void *arg, const struct sproxy_fp_conn *c);
size_t fastpath_each_open(struct fastpath *fp, size_t max, fastpath_open_fn fn, void *arg);

#endif
