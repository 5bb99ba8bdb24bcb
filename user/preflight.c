/* Start-up checks of the command line against the machine. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "preflight.h"

/* The store is written long after start: say now if it cannot be. */
int preflight_store(const char *path)
{
	char copy[PATH_MAX];
	const char *dir;

	snprintf(copy, sizeof(copy), "%s", path);
	dir = dirname(copy);
	if (access(dir, W_OK | X_OK) < 0) {
		log_err("--fakeip-store %s: directory %s: %s", path, dir, strerror(errno));
		return -1;
	}
	if (access(path, F_OK) == 0 && access(path, R_OK | W_OK) < 0) {
		log_err("--fakeip-store %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}
