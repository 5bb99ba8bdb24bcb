/* Fuzzes the readers of text the daemon is given rather than sent:
 * /etc/resolv.conf (user/resolvconf.c), and the address and CIDR values of
 * --listen, --resolver and --bypass (user/addr.c), which resolv.conf's
 * nameserver lines also go through.
 * The first input byte picks the path.  Invariants:
 *  - resolvconf_read adds at most 8 resolvers in all, returns how many it
 *    added, and none of them is one of the proxy's own listeners;
 *  - an address that parses prints as text that parses back to it;
 *  - a CIDR that parses has a prefix the family allows. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "addr.h"
#include "daemon.h"
#include "log.h"
#include "resolvconf.h"
#include "sproxy.h"
#include "fuzz.h"

/* The file resolvconf_read opens: a memfd, rewritten for each input. */
static const char *memfile(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];

	if (fd < 0) {
		fd = memfd_create("fuzz-resolv.conf", MFD_CLOEXEC);
		ASSERT(fd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	ASSERT(ftruncate(fd, 0) == 0);
	ASSERT(pwrite(fd, data, size, 0) == (ssize_t)size);
	return path;
}

static void check_resolvconf(const uint8_t *data, size_t size, int preset)
{
	struct options o;
	char err[128];

	memset(&o, 0, sizeof(o));
	ASSERT(addr_parse("127.0.0.1:53", 0, &o.listen[0], err, sizeof(err)) == 0);
	ASSERT(addr_parse("[::1]:3333", 0, &o.listen[1], err, sizeof(err)) == 0);
	o.n_listen = 2;
	/* some resolvers given already: the file only fills up to 8 */
	for (int i = 0; i < preset; i++)
		ASSERT(addr_parse("192.0.2.1", 53, &o.resolvers[o.n_resolvers++],
				  err, sizeof(err)) == 0);
	int n = resolvconf_read(memfile(data, size), &o);
	ASSERT(n >= 0 && n <= 8 - preset);
	ASSERT(o.n_resolvers == preset + n);
	for (int i = 0; i < o.n_resolvers; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&o.resolvers[i];
		ASSERT(sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
		for (int l = 0; l < o.n_listen; l++)
			ASSERT(!addr_equal(sa, (const struct sockaddr *)&o.listen[l]));
	}
}

static void check_addr(const char *s)
{
	struct sockaddr_storage a, b;
	char err[128], text[ADDR_STRLEN];

	if (addr_parse(s, 53, &a, err, sizeof(err)) == 0) {
		ASSERT(a.ss_family == AF_INET || a.ss_family == AF_INET6);
		addr_str((const struct sockaddr *)&a, text, sizeof(text));
		ASSERT(addr_parse(text, 0, &b, err, sizeof(err)) == 0);
		ASSERT(addr_equal((const struct sockaddr *)&a,
				  (const struct sockaddr *)&b));
		ASSERT(addr_port((const struct sockaddr *)&a) ==
		       addr_port((const struct sockaddr *)&b));
	} else {
		ASSERT(memchr(err, '\0', sizeof(err)));
	}
	struct sproxy_bypass_key key;
	uint16_t port;
	if (cidr_parse(s, &key, &port, err, sizeof(err)) == 0)
		ASSERT(key.prefixlen <= 128);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[300];

	if (size < 1)
		return 0;
	slog_level = SLOG_ERR; /* skipped lines warn; not news here */
	switch (data[0] & 1) {
	case 0:
		check_resolvconf(data + 1, size - 1, (data[0] >> 1) % 9);
		break;
	case 1:
		if (size - 1 >= sizeof(s))
			return 0;
		memcpy(s, data + 1, size - 1);
		s[size - 1] = '\0';
		check_addr(s);
		break;
	}
	return 0;
}
