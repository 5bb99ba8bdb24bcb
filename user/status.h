/* The clients of a running daemon's control socket: `sproxy-bpf status`
 * and `sproxy-bpf top`, and what they share: finding the daemon, asking,
 * and printing its connections. */
#ifndef SPROXY_STATUS_H
#define SPROXY_STATUS_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct json;

/* argv[0] is the command's name. Return the exit status. */
int status_main(int argc, char **argv);
int top_main(int argc, char **argv);

/* Which daemon: --socket PATH, else --pid N in dir, else the only one
 * with a socket in dir. */
struct ctl_choice {
	const char *dir;        /* NULL: control_dir(NULL) */
	pid_t pid;              /* 0: not given */
	const char *socket;     /* NULL: not given */
};

/* getopt's c for --pid ('P'), --socket ('S'), --control-dir ('D'): 1
 * when it was one of them (a bad pid exits with status 2). */
int ctl_option(int c, const char *arg, struct ctl_choice *ch);
struct option;
/* What status and top share of their command lines. */
struct ctl_cmd {
	const char *name;             /* "status": for the messages */
	const char *usage;            /* --help's text */
	const char *shorts;           /* getopt's letters, with h */
	const struct option *extra;   /* the command's own long options */
	/* One of its own options: 0, or an exit status with the message
	 * printed. */
	int (*own)(int c, const char *arg, void *ctx);
	void *ctx;
};
/* Parses argv: the command's own options, --pid, --socket, --control-dir
 * and --help, no operand; then chooses the daemon.  -1 to go on, with the
 * socket's path in path; else the exit status (0 after --help). */
int ctl_command(const struct ctl_cmd *cmd, int argc, char **argv, char *path, size_t len);
/* The socket's path into path.  0, or an exit status with the message
 * printed (none running: 1; several: 2, they are listed). */
int ctl_choose(const struct ctl_choice *c, char *path, size_t len);
/* The daemon's answer to "status", as text (*raw, malloc'ed, NUL ended)
 * and parsed.  NULL, with the message printed. */
struct json *ctl_status(const char *path, char **raw);

/* Printing, shared with top. */
const char *fmt_bytes(char *buf, size_t len, double v);
const char *fmt_age(char *buf, size_t len, double secs);
/* "host:port (address)" or "address:port". */
const char *fmt_dest(char *buf, size_t len, const struct json *conn);
/* A string the daemon sent, safe for a terminal. */
const char *fmt_safe(char *buf, size_t len, const char *s);

#endif
