/* Is a datagram's sender one of this daemon's own sockets?  With the
 * TPROXY rules' --local, this host's traffic is captured, and the name
 * lookups the proxy makes for itself (libevent's resolver) carry no mark:
 * they come back to the daemon, which must not answer them itself. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "ownsock.h"

/* Whether this process's fd table holds socket inode ino. */
static int our_inode(unsigned long ino)
{
	char want[64], path[300], link[64];
	struct dirent *de;
	DIR *dir = opendir("/proc/self/fd");
	int found = 0;

	if (!dir)
		return 0;
	snprintf(want, sizeof(want), "socket:[%lu]", ino);
	while (!found && (de = readdir(dir))) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = 0;
			found = strcmp(link, want) == 0;
		}
	}
	closedir(dir);
	return found;
}

int ownsock_udp(const struct sockaddr *client)
{
	static const char *const files[] = { "/proc/self/net/udp", "/proc/self/net/udp6" };
	unsigned port = addr_port(client);

	if (!addr_is_ours(client))
		return 0;            /* another host: the common case */
	for (int i = 0; i < 2; i++) {
		FILE *fp = fopen(files[i], "re");
		char line[512], local[64];
		unsigned lport;
		unsigned long ino;
		int mine = 0;

		if (!fp)
			continue;
		while (!mine && fgets(line, sizeof(line), fp)) {
			/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
			if (sscanf(line, " %*s %63s %*s %*s %*s %*s %*s %*s %*s %lu", local, &ino) != 2)
				continue;
			if (sscanf(strrchr(local, ':') ? strrchr(local, ':') + 1 : "", "%x", &lport) == 1 &&
			    lport == port && ino && our_inode(ino))
				mine = 1;
		}
		fclose(fp);
		if (mine)
			return 1;
	}
	return 0;
}

