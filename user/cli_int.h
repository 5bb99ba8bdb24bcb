/* The command line's insides, shared by cli.c (the commands), options.c
 * (each option's checks) and usage.c (the --help text).  Nothing else
 * includes this. */
#ifndef SPROXY_CLI_INT_H
#define SPROXY_CLI_INT_H
#include <getopt.h>
#include <stddef.h>

struct options;

/* Ports that carry TLS (HTTPS, SMTPS, LDAPS, DNS over TLS, FTPS, IMAPS,
 * POP3S, XMPP over TLS, HTTPS-alt) or SSH: nothing there can be tagged. */
#define TLS_PORTS_DEFAULT "22,443,465,563,636,853,989-995,5223,8443"

/* What --help prints (and a bare or bad command line, to stderr). */
extern const char cli_usage_text[];
/* Every long option, for getopt_long and for config files by name. */
extern const struct option cli_long_opts[];
/* The command is run: --user and --cgroup-parent are run's, --pin is not,
 * and options end at CMD. */
extern int cli_is_run;

/* How cli_apply_opt() failed: a usage error gets a pointer to --help; a
 * bad number names its option and range, which says enough. */
enum { BAD_USAGE = -1, BAD_NUMBER = -2 };

/* err filled from fmt; BAD_USAGE. */
int cli_usage_error(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* One option (its getopt value c), from the command line or a config file:
 * the same checks and the same messages.  0, or BAD_USAGE / BAD_NUMBER
 * with err. */
int cli_apply_opt(struct options *o, int c, const char *arg, char *err, size_t errlen);
/* The values o has before any option. */
void cli_defaults(struct options *o);
/* --config FILE (cli.c): its lines through cli_apply.  0, or BAD_NUMBER
 * with err (the message names the file and line). */
int cli_apply_config(struct options *o, const char *path, char *err, size_t errlen);

#endif
