/* SIGHUP's reload of the rules and upstreams (reload.c): read on the loop,
 * the upstreams' host names resolved off it, swapped in whole. */
#ifndef SPROXY_RELOAD_H
#define SPROXY_RELOAD_H

struct daemon;

/* A SIGHUP: starts a reload, or marks one under way to be done again. */
void reload_request(struct daemon *d);
/* At exit: a reload under way is dropped, never applied. */
void reload_stop(struct daemon *d);

#endif
