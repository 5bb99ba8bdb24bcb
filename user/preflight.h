/* Checks made before anything is loaded: they need no privilege and change
 * nothing.  Each logs (or writes to err) what is wrong, naming the value
 * and the cause. */
#ifndef SPROXY_PREFLIGHT_H
#define SPROXY_PREFLIGHT_H
#include <stddef.h>

/* The oldest kernel whose cgroup/getsockopt hook can refuse with an errno
 * of its choosing (older ones turn every refusal into EFAULT). */
#define PREFLIGHT_MIN_KERNEL_MAJOR 5
#define PREFLIGHT_MIN_KERNEL_MINOR 18

/* release (uname -r) is at least the minimum.  1 yes, 0 no, -1 unreadable. */
int kernel_recent_enough(const char *release);
/* The running kernel, through uname(2).  0, or -1 logged. */
int preflight_kernel(void);

/* --fakeip-store: not a directory; its directory writable, the file (if
 * any) readable and writable.  0 or -1. */
int preflight_store(const char *path);

/* A FakeIP range on its own: ADDRESS/PREFIX, a prefix the pool can use,
 * no overlap with loopback, unspecified, link-local, multicast, reserved or
 * IPv4-mapped addresses.  0, or -1 with err. */
int fakeip_range_check(const char *cidr, char *err, size_t errlen);
/* A FakeIP range against this network namespace's own subnets: fake
 * addresses there would hide real hosts.  given: the user's (an error),
 * else the default (a warning).  0, or -1 logged. */
int preflight_fakeip_local(const char *cidr, int given);

struct options;
/* The checks both daemons (capture and TPROXY) make last: the FakeIP
 * store and ranges, then the connection log, which this opens.  0, or -1
 * logged. */
int preflight_serving(const struct options *o);

#endif
