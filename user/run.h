/* sproxy-bpf run: one command in a cgroup of its own, captured from its
 * first connection, as the invoking user.  The daemon around it is main.c's,
 * attached to that cgroup; this file makes the cgroup, starts the command
 * once capture is ready, passes signals on, and says when the cgroup is
 * empty. */
#ifndef SPROXY_RUN_H
#define SPROXY_RUN_H

struct daemon;
struct options;
struct runcmd;

/* The parent of run cgroups when --cgroup-parent is not given, below the
 * cgroup v2 mount. */
#define RUN_PARENT_DEFAULT "sproxy-bpf.run"

/* Works out the user, makes <parent>/<pid>, forks CMD into it (waiting, not
 * yet executed) and blocks the signals it will pass on; sets o->cgroup to
 * that cgroup.  NULL with *status set (logged) on failure. */
struct runcmd *runcmd_prepare(struct options *o, int *status);
/* Capture is ready: CMD executes.  The daemon's loop is broken once CMD
 * and everything it started have exited (the cgroup is empty) and their
 * connections have ended.  0 or -1. */
int runcmd_start(struct runcmd *c, struct daemon *d);
/* Its events, before the daemon's loop is freed. */
void runcmd_stop(struct runcmd *c);
/* After the daemon detached (daemon_status: how its life ended): removes
 * the cgroup, frees c, returns the exit status for run: CMD's (128+N for
 * signal N), or daemon_status when CMD never ran. */
int runcmd_finish(struct runcmd *c, int daemon_status);

#endif
