/* Noticing that the captured cgroup is removed (a user's slice at logout)
 * and that a cgroup of the same path appears again (login). */
#ifndef SPROXY_CGWATCH_H
#define SPROXY_CGWATCH_H
#include <stddef.h>

struct event_base;
struct cgwatch;

/* present 0: path's cgroup is gone; 1: path is a cgroup again (a new one). */
typedef void cgwatch_fn(void *arg, int present);

/* Watches path (a cgroup that exists now): inotify on its parent directory,
 * for promptness, and a stat once a second, for a parent that goes too.
 * NULL with err on failure. */
struct cgwatch *cgwatch_new(struct event_base *base, const char *path,
			    cgwatch_fn *fn, void *arg, char *err, size_t errlen);
void cgwatch_free(struct cgwatch *w);

#endif
