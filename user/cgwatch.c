/* The captured cgroup's presence, by inotify and a one-second stat. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <event2/event.h>

#include "cgwatch.h"

struct cgwatch {
	char path[PATH_MAX];
	char parent[PATH_MAX];
	uint64_t id;            /* the cgroup we capture; 0 while it is gone */
	int fd;                 /* inotify */
	int wd;                 /* the parent's watch; -1 while there is none */
	struct event *ev, *tick;
	cgwatch_fn *fn;
	void *arg;
};

static uint64_t cg_id_of(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	return (uint64_t)st.st_ino;
}

static void watch_parent(struct cgwatch *w)
{
	if (w->wd >= 0)
		return;
	w->wd = inotify_add_watch(w->fd, w->parent, IN_CREATE | IN_DELETE |
				  IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR);
}

/* Compare what is there with what we hold; tell the owner of a change. */
static void check(struct cgwatch *w)
{
	uint64_t now = cg_id_of(w->path);

	watch_parent(w);
	if (w->id && now != w->id) {
		w->id = 0;
		w->fn(w->arg, 0);
	}
	if (!w->id && now) {
		w->id = now;
		w->fn(w->arg, 1);
	}
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
	struct cgwatch *w = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;

			if (e->mask & IN_IGNORED)
				w->wd = -1;     /* the parent went: the tick takes over */
			p += sizeof(*e) + e->len;
		}
	}
	check(w);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	check(arg);
}

struct cgwatch *cgwatch_new(struct event_base *base, const char *path,
			    cgwatch_fn *fn, void *arg, char *err, size_t errlen)
{
	struct cgwatch *w = calloc(1, sizeof(*w));
	struct timeval sec = { 1, 0 };
	char *slash;

	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(w->path, sizeof(w->path), "%s", path);
	snprintf(w->parent, sizeof(w->parent), "%s", path);
	slash = strrchr(w->parent, '/');
	if (slash && slash != w->parent)
		*slash = 0;
	w->fn = fn;
	w->arg = arg;
	w->wd = -1;
	w->id = cg_id_of(path);
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		snprintf(err, errlen, "cannot watch %s: inotify: %s", w->parent, strerror(errno));
		goto fail;
	}
	watch_parent(w);
	w->ev = event_new(base, w->fd, EV_READ | EV_PERSIST, on_inotify, w);
	w->tick = event_new(base, -1, EV_PERSIST, on_tick, w);
	if (!w->ev || !w->tick || event_add(w->ev, NULL) < 0 || event_add(w->tick, &sec) < 0) {
		snprintf(err, errlen, "cannot watch %s: out of memory", path);
		goto fail;
	}
	return w;
fail:
	cgwatch_free(w);
	return NULL;
}

void cgwatch_free(struct cgwatch *w)
{
	if (!w)
		return;
	if (w->ev)
		event_free(w->ev);
	if (w->tick)
		event_free(w->tick);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}
