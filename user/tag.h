/* The text appended to User-Agents: a template (--tag) filled in with the
 * process of each connection.  What a server sees of the process is the
 * user's choice; what the process named itself cannot break the header. */
#ifndef SPROXY_TAG_H
#define SPROXY_TAG_H
#include <stddef.h>

/* The tag a connection gets unless --tag says otherwise. */
#define TAG_DEFAULT "sproxy-bpf (comm=%c; pid=%p)"
/* Longest template, and room for any expansion of one. */
#define TAG_TEMPLATE_MAX 128
#define TAG_BUF 1024
/* Room for a sanitized comm (16 bytes in the kernel). */
#define TAG_COMM_MAX 64

/* A template: printable ASCII, 1 to TAG_TEMPLATE_MAX bytes, with %c (comm),
 * %p (pid), %u (uid), %g (gid) and %% (a '%').  0, or -1 with err saying
 * what is wrong. */
int tag_template_check(const char *tpl, char *err, size_t errlen);

/* Expands a checked template into buf.  The comm is sanitized: bytes
 * outside printable ASCII and any of "();\\" become '_'.  Truncated,
 * always NUL-terminated (size 0 writes nothing).  Returns buf. */
char *tag_format(char *buf, size_t size, const char *tpl, const char *comm,
		 unsigned pid, unsigned uid, unsigned gid);

#endif
