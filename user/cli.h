/* The command line. */
#ifndef SPROXY_CLI_H
#define SPROXY_CLI_H

struct options;

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_CGROUP_GONE = 3 };

/* Fills o from argv, or prints why not and exits with EXIT_USAGE; --help
 * and --version print and exit 0. */
void cli_parse(int argc, char **argv, struct options *o);
/* s as a number from min to max: decimal digits only (a leading zero is
 * not octal), or 0x hex when hex_ok.  0, or -1 when it is not one. */
int cli_number(const char *s, int hex_ok, unsigned long min, unsigned long max,
	       unsigned long *out);

#endif
