/* The command line. */
#ifndef SPROXY_CLI_H
#define SPROXY_CLI_H
#include <stddef.h>

struct options;

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_CGROUP_GONE = 3 };

/* Fills o from argv, or prints why not and exits with EXIT_USAGE; --help
 * and --version print and exit 0, and so does 'check' once all is read
 * (printing "ok").  The rules are compiled (o->rules). */
void cli_parse(int argc, char **argv, struct options *o);
/* One long option by name (no "--"), as the command line or a config file
 * gives it: value NULL for a bare flag, or "true"/"false" (yes/no, on/off,
 * 1/0).  The same checks and messages as the command line.  0, or -1 with
 * what is wrong in err.  Values are copied (o->owned). */
int cli_apply(struct options *o, const char *name, const char *value, char *err,
	      size_t errlen);
/* A config file's text applied to o, line by line through cli_apply; name
 * stands for the file in messages.  For tests and the fuzzer. */
int cli_apply_config_mem(struct options *o, const char *name, const char *text,
			 size_t len, char *err, size_t errlen);
/* Once every option is in: compiles o->rules against the upstreams' names
 * (an empty set when no --rule was given).  0, or -1 with err. */
int cli_finish(struct options *o, char *err, size_t errlen);
/* For a reload: reads the same command line (and so the config file's
 * current text) into a zeroed o, printing nothing and exiting never.  0
 * with o filled and its rules compiled, or -1 with err and o empty; the
 * options in use are not touched either way.  The upstreams' host names
 * are not resolved (o->resolve_later): upstream_resolve each. */
int cli_reparse(int argc, char **argv, struct options *o, char *err, size_t errlen);
/* A copy of the command line for cli_reparse, taken before cli_parse,
 * which may blank secrets in argv itself.  NULL when out of memory. */
char **cli_copy_args(int argc, char **argv);
void cli_free_args(char **args);
/* Frees what o owns: copied values and its reference to the rules. */
void cli_options_free(struct options *o);
/* 'rules' and 'doctor' (cligw.c): argv as main got it.  The exit status. */
int cli_rules(int argc, char **argv);
int cli_doctor(int argc, char **argv);
/* s as a number from min to max: decimal digits only (a leading zero is
 * not octal), or 0x hex when hex_ok.  0, or -1 when it is not one. */
int cli_number(const char *s, int hex_ok, unsigned long min, unsigned long max,
	       unsigned long *out);

#endif
