/* The config file: "option = value" lines, one long option each, read
 * with libinih.  This module reads and checks the lines; what each option
 * means is the command line's business (cli_apply), handed in as apply. */
#ifndef SPROXY_CONFIG_H
#define SPROXY_CONFIG_H
#include <stddef.h>

#define CONFIG_MAX_LINE 8192

/* Applies one line: name and value as written, origin "FILE:LINE".  0, or
 * -1 with what is wrong in err. */
typedef int (*config_apply_fn)(void *ctx, const char *name, const char *value,
			       const char *origin, char *err, size_t errlen);

/* Hands every "name = value" line of path to apply, in order.  0, or -1
 * with each bad line in err as "FILE:LINE: what is wrong", one a line (the
 * first 20).  A file that holds a URL with a password and that others may
 * read gets a warning. */
int config_load(const char *path, config_apply_fn apply, void *ctx, char *err,
		size_t errlen);
/* The same from memory; name stands for the file in messages. */
int config_load_mem(const char *name, const char *text, size_t len,
		    config_apply_fn apply, void *ctx, char *err, size_t errlen);

#endif
