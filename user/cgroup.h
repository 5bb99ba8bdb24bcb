/* cgroup v2: finding the mount, checking targets, the daemon's own group. */
#ifndef SPROXY_CGROUP_H
#define SPROXY_CGROUP_H
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/* The cgroup2 mount point from /proc/mounts.  0 or -1 (none mounted). */
int cg_mount(char *buf, size_t len);

/* Resolves arg (absolute, or relative to the mount) to an absolute path and
 * checks it is a cgroup v2 directory (not a file in one); refuses the root unless allow_root.
 * 0, or -1 with err saying which and why. */
int cg_resolve(const char *mount, const char *arg, int allow_root,
	       char *path, size_t len, char *err, size_t errlen);

/* This process's cgroup v2, as an absolute path. */
int cg_self(const char *mount, char *path, size_t len);

/* Whether path is dir or below it. */
int cg_within(const char *path, const char *dir);

int cg_move_self(const char *path);

/* The path of a cgroup id below the mount ("/a/b"); "?" when there is no
 * such cgroup (any more).  Cheap: cached, and never walks the tree.  The
 * string lives until the next call. */
const char *cg_name(const char *mount, uint64_t id);

/* The daemon's own cgroup <mount>/sproxy-bpf/<pid>: created empty.  Empty
 * leftovers of daemons that were killed are removed first. */
int cg_own_create(const char *mount, char *path, size_t len, char *err, size_t errlen);
void cg_own_remove(const char *mount, const char *path);
/* The empty cgroups of daemons that were killed (detach). */
void cg_own_remove_stale(const char *mount);
/* Removes base/<pid> directories whose pid is dead and that are empty
 * (rmdir fails otherwise); the log line says they were left by who. */
void cg_remove_stale(const char *base, const char *who);

#endif
