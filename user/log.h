/* Daemon messages (stderr) and the connection log (--log, --json). */
#ifndef SPROXY_LOG_H
#define SPROXY_LOG_H
#include <stdint.h>
#include <sys/socket.h>

enum { SLOG_ERR, SLOG_WARN, SLOG_INFO, SLOG_DEBUG };
extern int slog_level;

void slog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_err(...)   slog(SLOG_ERR, __VA_ARGS__)
#define log_warn(...)  slog(SLOG_WARN, __VA_ARGS__)
#define log_info(...)  slog(SLOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (slog_level >= SLOG_DEBUG) slog(SLOG_DEBUG, __VA_ARGS__); } while (0)

struct sproxy_proc;

/* s (up to n bytes or its NUL) made safe for a terminal: valid UTF-8 kept,
 * control characters and bytes that are not UTF-8 as \xNN.  For names
 * that come from processes (comm).  Returns out. */
char *log_escape(char *out, size_t outlen, const char *s, size_t n);
/* The same for the inside of a JSON string: quotes, backslashes and control
 * characters escaped, bytes that are not UTF-8 as U+FFFD. */
char *log_escape_json(char *out, size_t outlen, const char *s, size_t n);

/* One finished connection or flow. */
struct conn_log {
	const char *proto;                 /* "tcp", "udp", "dns" */
	const struct sproxy_proc *proc;    /* NULL when unknown */
	const char *cgroup;                /* path below the cgroup2 mount */
	const struct sockaddr *src;
	const struct sockaddr *dst;
	const char *host;                  /* name behind a fake address, or sniffed */
	const char *sniffed;               /* "tls", "http": how host was found */
	int rule;                          /* 1-based rule that matched; 0: none */
	const char *route;                 /* "DIRECT", "REJECT", an upstream's name,
	                                    * "to:ADDR:PORT" (--to); NULL: not decided
	                                    * (no rule=, route=) */
	const char *via;                   /* the upstream taken; NULL: none */
	uint64_t up, down;                 /* bytes app->server, server->app */
	double duration;                   /* seconds */
	const char *result;                /* "ok", "error", "refused", "rejected" */
	const char *error;                 /* NULL when none */
	const char *capture;               /* "tproxy": from another host, no process */
	const char *path;                  /* "kernel": the fast path; NULL: "proxy" */
	uint64_t netns;                    /* another network namespace's inode; 0: ours */
};

/* path NULL: stderr.  A new file is made mode 0600.  Returns 0 or -errno. */
int connlog_open(const char *path, int json);
/* Opens the file again (after logrotate moved it); on failure, logged, the
 * old one stays.  0 or -errno. */
int connlog_reopen(void);
void connlog_close(void);
void connlog_write(const struct conn_log *c);
/* Lines written between the two go out together, at the release (a batch
 * of the kernel's reports); the release says if writing failed. */
void connlog_hold(void);
void connlog_release(void);

#endif
