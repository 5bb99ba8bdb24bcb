/* The resolvers to forward to when none is given: /etc/resolv.conf's. */
#ifndef SPROXY_RESOLVCONF_H
#define SPROXY_RESOLVCONF_H

struct options;

/* Appends the nameservers of path (up to 8 in all) to o->resolvers,
 * skipping any that is one of o's own listeners (a loop).  Logs what it
 * skips and when nothing is usable.  Returns how many it added, or -1 when
 * path cannot be read. */
int resolvconf_read(const char *path, struct options *o);

#endif
