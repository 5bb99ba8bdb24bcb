/* The command line. */
#ifndef SPROXY_CLI_H
#define SPROXY_CLI_H

struct options;

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* Fills o from argv, or prints why not and exits with EXIT_USAGE; --help
 * and --version print and exit 0. */
void cli_parse(int argc, char **argv, struct options *o);

#endif
