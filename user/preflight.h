/* Checks made before anything is loaded: they need no privilege and change
 * nothing.  Each logs what is wrong, naming the value and the cause. */
#ifndef SPROXY_PREFLIGHT_H
#define SPROXY_PREFLIGHT_H

/* --fakeip-store: its directory writable, the file (if any) readable and
 * writable.  0 or -1. */
int preflight_store(const char *path);

#endif
