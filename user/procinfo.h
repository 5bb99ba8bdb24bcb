/* What a process is, from /proc: for PROCESS-NAME and PROCESS-PATH rules. */
#ifndef SPROXY_PROCINFO_H
#define SPROXY_PROCINFO_H
#include <stddef.h>
#include <stdint.h>

/* The path of pid's executable (pid as this process's /proc sees it), with
 * the kernel's " (deleted)" dropped for a binary replaced since it started
 * (an upgrade), so that it still matches its path.  0, or -1 with errno
 * (ENOENT: gone; EACCES: not ours to read). */
int procinfo_exe(uint32_t pid, char *buf, size_t len);

#endif
