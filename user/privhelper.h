/* The privileged helper: a child that the daemon forks before it gives up
 * root, and that does for it the few things an unprivileged process cannot:
 * open the --log file again (logrotate), write the --fakeip-store file, read
 * the config and @FILE files again on SIGHUP, name a cgroup by id, read a
 * process's executable, and remove the daemon's own cgroup at exit (also
 * when the daemon dies).  It answers only for the paths it was given or saw
 * opened before the drop, and has no network.
 *
 * Every call works without a helper too (before the drop, with --no-drop):
 * then it does the job itself.  No logging here: log.c calls in. */
#ifndef SPROXY_PRIVHELPER_H
#define SPROXY_PRIVHELPER_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum { PH_READ, PH_APPEND };

/* Before the helper starts: the log it may reopen, the store it may write,
 * a file it may remove (the control socket). */
void privhelper_allow_append(const char *path);
void privhelper_allow_store(const char *path);
void privhelper_allow_remove(const char *path);

/* Forks the helper.  It keeps uid 0 and only CAP_DAC_OVERRIDE,
 * CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE; it moves itself from own_cg ("" for
 * none) to self_cg.  The child's pid, or -1 with errno. */
pid_t privhelper_start(const char *cg_mount, const char *own_cg, const char *self_cg);
int privhelper_active(void);

/* A file opened O_RDONLY (PH_READ) or for appending, created 0600
 * (PH_APPEND); close-on-exec.  fd, or -1 with errno.  A path read before the
 * helper starts may be read again through it. */
int privhelper_open(const char *path, int kind);

/* The FakeIP store's temporary file: a fresh one (0600, never through a
 * symlink), renamed over the store, or removed; unlink also removes a file
 * given to privhelper_allow_remove. */
int privhelper_create_excl(const char *tmp);
int privhelper_rename(const char *tmp, const char *path);
int privhelper_unlink(const char *tmp);

/* The processes of this cgroup (and below): their UDP sockets may be taken
 * at exit, to point them back at their peers (udp_failopen.c). */
void privhelper_allow_sockets_of(const char *cgroup);

/* A copy of the UDP socket with inode ino in process pid (pidfd_getfd,
 * which needs CAP_SYS_PTRACE for another user's process).  fd, or -1 with
 * errno; ENOSYS: no helper, take it directly. */
int privhelper_take_socket(uint32_t pid, uint32_t ino);

/* readlink(/proc/PID/exe): its length, or -1 with errno. */
ssize_t privhelper_exe(uint32_t pid, char *buf, size_t len);

/* A cgroup's absolute path by id (the file handle on the cgroup2 mount).
 * 0, or -1 with errno (ENOSYS: no helper, ask the kernel directly). */
int privhelper_cgroup_path(uint64_t id, char *buf, size_t len);

/* At exit: the helper moves the daemon back to self_cg, removes own_cg and
 * exits.  1 done, 0 no helper (the caller does it), -1 failed (err says). */
int privhelper_finish(char *err, size_t errlen);

#endif
