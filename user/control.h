/* The daemon's control socket: <dir>/<pid>.sock, a unix stream socket
 * only root (the daemon's user) may open.  A client writes one request
 * line ("status"); the daemon answers with one JSON document and closes.
 * The directory is --control-dir, else $SPROXY_BPF_CONTROL_DIR, else
 * /run/sproxy-bpf. */
#ifndef SPROXY_CONTROL_H
#define SPROXY_CONTROL_H
#include <stddef.h>
#include <sys/types.h>

#define CONTROL_DIR_DEFAULT "/run/sproxy-bpf"
#define CONTROL_DIR_ENV     "SPROXY_BPF_CONTROL_DIR"
#define CONTROL_MAX_REQUEST 256

struct daemon;
struct control;

/* given, or the environment's, or the default. */
const char *control_dir(const char *given);
/* <dir>/<pid>.sock into buf.  0, or -1 when it does not fit a sun_path. */
int control_path(char *buf, size_t len, const char *dir, pid_t pid);
/* Whether the socket at path has a daemon behind it: 1 yes, 0 no (nobody
 * listens), -1 cannot tell (errno: EACCES, EAGAIN...). */
int control_alive(const char *path);
/* Removes the sockets in dir of daemons that are gone (their pid dead and
 * nobody listening).  Returns how many. */
int control_sweep(const char *dir);

/* Listens on <dir>/<our pid>.sock.  NULL, with err saying what and why; the
 * daemon runs on without one. */
struct control *control_new(struct daemon *d, const char *dir, char *err, size_t errlen);
/* Closes the socket and removes its file. */
void control_free(struct control *c);

#endif
