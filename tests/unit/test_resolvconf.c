/* Default resolvers from a resolv.conf: nameserver lines only, our own
 * listener skipped (it would loop), at most 8. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "check.h"
#include "daemon.h"
#include "resolvconf.h"

static char path[] = "/tmp/sproxy-bpf-test_resolvconf.XXXXXX";

static void write_conf(const char *text)
{
	FILE *fp = fopen(path, "w");

	if (fp) {
		fputs(text, fp);
		fclose(fp);
	}
}

static const char *nth(const struct options *o, int i)
{
	static char buf[ADDR_STRLEN];

	return addr_str((const struct sockaddr *)&o->resolvers[i], buf, sizeof(buf));
}

static void reads_nameservers(void)
{
	static struct options o;

	write_conf("# comment\nsearch example.test\nnameserver 198.51.100.53\n"
		   "  nameserver 2001:db8::53\nnameserver not-an-address\noptions ndots:1\n");
	CHECK(resolvconf_read(path, &o) == 2);
	CHECK(o.n_resolvers == 2);
	CHECK_STREQ(nth(&o, 0), "198.51.100.53:53");
	CHECK_STREQ(nth(&o, 1), "[2001:db8::53]:53");
}

static void skips_our_listener(void)
{
	static struct options o;

	addr_parse("127.0.0.1:53", 0, &o.listen[0], NULL, 0);
	o.n_listen = 1;
	write_conf("nameserver 127.0.0.1\nnameserver 192.0.2.53\n");
	CHECK(resolvconf_read(path, &o) == 1);
	CHECK_STREQ(nth(&o, 0), "192.0.2.53:53");
}

static void at_most_eight(void)
{
	static struct options o;
	char text[1024] = "";

	for (int i = 1; i <= 10; i++) {
		char line[64];

		snprintf(line, sizeof(line), "nameserver 192.0.2.%d\n", i);
		strcat(text, line);
	}
	write_conf(text);
	CHECK(resolvconf_read(path, &o) == 8);
	CHECK_STREQ(nth(&o, 7), "192.0.2.8:53");
}

static void missing_file(void)
{
	static struct options o;

	CHECK(resolvconf_read("/nonexistent/resolv.conf", &o) == -1);
	CHECK(o.n_resolvers == 0);
}

int main(void)
{
	int fd = mkstemp(path);

	if (fd < 0)
		return 1;
	close(fd);
	RUN("resolvconf", reads_nameservers);
	RUN("resolvconf", skips_our_listener);
	RUN("resolvconf", at_most_eight);
	RUN("resolvconf", missing_file);
	unlink(path);
	CHECK_EXIT();
}
