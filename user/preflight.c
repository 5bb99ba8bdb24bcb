/* Start-up checks of the command line against the machine. */
#include <errno.h>
#include <ifaddrs.h>
#include <libgen.h>
#include <limits.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "daemon.h"
#include "fakeip.h"
#include "log.h"
#include "preflight.h"

int kernel_recent_enough(const char *release)
{
	unsigned major, minor;

	if (sscanf(release, "%u.%u", &major, &minor) != 2)
		return -1;
	return major > PREFLIGHT_MIN_KERNEL_MAJOR ||
	       (major == PREFLIGHT_MIN_KERNEL_MAJOR && minor >= PREFLIGHT_MIN_KERNEL_MINOR);
}

int preflight_kernel(void)
{
	struct utsname u;

	if (uname(&u) < 0 || kernel_recent_enough(u.release) < 0) {
		log_warn("cannot tell the kernel's version; it needs to be %d.%d or later",
			 PREFLIGHT_MIN_KERNEL_MAJOR, PREFLIGHT_MIN_KERNEL_MINOR);
		return 0;
	}
	if (!kernel_recent_enough(u.release)) {
		log_err("kernel %s is too old: sproxy-bpf needs Linux %d.%d or later (older "
			"kernels turn the proxy's refusals into EFAULT)", u.release,
			PREFLIGHT_MIN_KERNEL_MAJOR, PREFLIGHT_MIN_KERNEL_MINOR);
		return -1;
	}
	return 0;
}

/* The store is written long after start: say now if it cannot be. */
int preflight_store(const char *path)
{
	char copy[PATH_MAX];
	const char *dir;
	struct stat st;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		log_err("--fakeip-store %s is a directory: name a file in it", path);
		return -1;
	}
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

struct prefix {
	int family;
	uint8_t a[16];
	unsigned len;
};

static int prefix_parse(const char *s, struct prefix *p)
{
	char buf[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t n;

	if (!slash || (size_t)(slash - s) >= sizeof(buf) || !slash[1] ||
	    strspn(slash + 1, "0123456789") != strlen(slash + 1) || strlen(slash + 1) > 3)
		return -1;
	n = (size_t)(slash - s);
	memcpy(buf, s, n);
	buf[n] = 0;
	memset(p, 0, sizeof(*p));
	p->len = (unsigned)atoi(slash + 1);
	if (inet_pton(AF_INET, buf, p->a) == 1)
		p->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, p->a) == 1)
		p->family = AF_INET6;
	else
		return -1;
	return p->len <= (p->family == AF_INET ? 32u : 128u) ? 0 : -1;
}

/* Two prefixes overlap when the shorter contains the other's start. */
static int prefix_overlap(const struct prefix *x, const struct prefix *y)
{
	unsigned n = x->len < y->len ? x->len : y->len, i;

	if (x->family != y->family)
		return 0;
	for (i = 0; i < n / 8; i++)
		if (x->a[i] != y->a[i])
			return 0;
	if (n % 8) {
		uint8_t m = (uint8_t)(0xff00u >> (n % 8));

		if ((x->a[i] & m) != (y->a[i] & m))
			return 0;
	}
	return 1;
}

/* Where a fake address would be taken for something else. */
static const struct { const char *cidr, *what; } reserved[] = {
	{ "0.0.0.0/8", "\"this network\" (0.0.0.0/8)" },
	{ "127.0.0.0/8", "loopback" },
	{ "169.254.0.0/16", "link-local" },
	{ "224.0.0.0/4", "multicast" },
	{ "240.0.0.0/4", "reserved and broadcast" },
	{ "::/127", "the unspecified and loopback addresses" },
	{ "::ffff:0:0/96", "IPv4-mapped addresses" },
	{ "fe80::/10", "link-local" },
	{ "ff00::/8", "multicast" },
};

int fakeip_range_check(const char *cidr, char *err, size_t errlen)
{
	struct prefix p, r;
	size_t i;

	if (prefix_parse(cidr, &p) < 0) {
		snprintf(err, errlen, "'%s': want ADDRESS/PREFIX (e.g. 198.18.0.0/15)", cidr);
		return -1;
	}
	if (p.len > (p.family == AF_INET ? 30u : 126u)) {
		snprintf(err, errlen, "'%s': the prefix is at most /%u, or the pool is "
			 "too small", cidr, p.family == AF_INET ? 30 : 126);
		return -1;
	}
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		prefix_parse(reserved[i].cidr, &r);
		if (prefix_overlap(&p, &r)) {
			snprintf(err, errlen, "'%s' overlaps %s (%s): traffic to those "
				 "addresses would break", cidr, reserved[i].what,
				 reserved[i].cidr);
			return -1;
		}
	}
	return 0;
}

static void ifa_prefix(const struct ifaddrs *ifa, struct prefix *p)
{
	const uint8_t *m;
	size_t n;

	memset(p, 0, sizeof(*p));
	p->family = ifa->ifa_addr->sa_family;
	if (p->family == AF_INET) {
		memcpy(p->a, &((struct sockaddr_in *)ifa->ifa_addr)->sin_addr, 4);
		m = (const uint8_t *)&((struct sockaddr_in *)ifa->ifa_netmask)->sin_addr;
		n = 4;
	} else {
		memcpy(p->a, &((struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr, 16);
		m = (const uint8_t *)&((struct sockaddr_in6 *)ifa->ifa_netmask)->sin6_addr;
		n = 16;
	}
	for (size_t i = 0; i < n; i++)
		p->len += (unsigned)__builtin_popcount(m[i]);
}

int preflight_fakeip_local(const char *cidr, int given)
{
	struct ifaddrs *all, *ifa;
	struct prefix p, own;
	char a[INET6_ADDRSTRLEN];
	int rc = 0;

	if (prefix_parse(cidr, &p) < 0 || getifaddrs(&all) < 0)
		return 0;
	for (ifa = all; ifa && !rc; ifa = ifa->ifa_next) {
		if (!ifa->ifa_addr || !ifa->ifa_netmask ||
		    (ifa->ifa_addr->sa_family != AF_INET && ifa->ifa_addr->sa_family != AF_INET6))
			continue;
		ifa_prefix(ifa, &own);
		if (!prefix_overlap(&p, &own))
			continue;
		inet_ntop(own.family, own.a, a, sizeof(a));
		if (given) {
			log_err("--fakeip-range %s overlaps %s/%u on %s, a subnet of this "
				"machine: fake addresses would hide real hosts there",
				cidr, a, own.len, ifa->ifa_name);
			rc = -1;
		} else {
			log_warn("the FakeIP range %s overlaps %s/%u on %s; pass another "
				 "--fakeip-range", cidr, a, own.len, ifa->ifa_name);
			break;
		}
	}
	freeifaddrs(all);
	return rc;
}

int preflight_serving(const struct options *o)
{
	if (o->fakeip_store && preflight_store(o->fakeip_store) < 0)
		return -1;
	if (!o->disable_fakeip &&
	    (preflight_fakeip_local(o->fakeip_range[0] ? o->fakeip_range[0] : FAKEIP_DEFAULT_V4,
				    o->fakeip_range[0] != NULL) < 0 ||
	     preflight_fakeip_local(o->fakeip_range[1] ? o->fakeip_range[1] : FAKEIP_DEFAULT_V6,
				    o->fakeip_range[1] != NULL) < 0))
		return -1;
	if (connlog_open(o->log_path, o->json) < 0) {
		log_err("--log %s: cannot open it: %s", o->log_path, strerror(errno));
		return -1;
	}
	return 0;
}
