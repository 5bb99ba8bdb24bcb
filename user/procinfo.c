/* /proc/PID/exe.  The kernel keeps 15 bytes of a thread's name (comm):
 * "telegram-desktop" is "telegram-deskto" there, so name rules need the
 * executable's own name too. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "privhelper.h"
#include "procinfo.h"

int procinfo_exe(uint32_t pid, char *buf, size_t len)
{
	static const char deleted[] = " (deleted)";
	ssize_t n;

	if (len < 2) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* Another user's process, after the drop: the helper reads it. */
	n = privhelper_exe(pid, buf, len);
	if (n < 0)
		return -1;
	if ((size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	buf[n] = 0;
	if ((size_t)n > sizeof(deleted) - 1 &&
	    strcmp(buf + n - (sizeof(deleted) - 1), deleted) == 0)
		buf[n - (sizeof(deleted) - 1)] = 0;
	return 0;
}
