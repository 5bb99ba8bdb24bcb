/* What the daemon asks of, or sets on, the system it runs on. */
#ifndef SPROXY_SYSENV_H
#define SPROXY_SYSENV_H
#include <stdint.h>

/* Raises the soft fd limit as far as it goes: every connection costs two. */
void sysenv_raise_nofile(void);
/* The cookie of our network namespace, which the hooks compare; 0 when the
 * kernel cannot tell. */
uint64_t sysenv_netns_cookie(void);

#endif
