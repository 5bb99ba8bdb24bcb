/* Default resolvers from a resolv.conf file. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "daemon.h"
#include "log.h"
#include "resolvconf.h"

static int is_listener(const struct options *o, const struct sockaddr_storage *ss)
{
	for (int i = 0; i < o->n_listen; i++)
		if (addr_equal((const struct sockaddr *)ss,
			       (const struct sockaddr *)&o->listen[i]))
			return 1;
	return 0;
}

int resolvconf_read(const char *path, struct options *o)
{
	FILE *fp = fopen(path, "re");
	char line[512], ns[256], err[128];
	int added = 0;

	if (!fp) {
		log_warn("no --resolver and %s: %s; names that are not FakeIP "
			 "answers will fail", path, strerror(errno));
		return -1;
	}
	while (o->n_resolvers < 8 && fgets(line, sizeof(line), fp)) {
		struct sockaddr_storage *ss = &o->resolvers[o->n_resolvers];

		if (sscanf(line, " nameserver %255s", ns) != 1 ||
		    addr_parse(ns, 53, ss, err, sizeof(err)) < 0)
			continue;
		if (is_listener(o, ss)) {
			log_warn("resolver %s in %s is this proxy: skipped", ns, path);
			continue;
		}
		o->n_resolvers++;
		added++;
	}
	fclose(fp);
	if (!o->n_resolvers)
		log_warn("no usable resolver in %s; pass --resolver", path);
	return added;
}
