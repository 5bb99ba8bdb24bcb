/* Recognising the daemon's own UDP sockets from a sender's address: one
 * of ours bound to the port is ours; a port nobody here holds, or an
 * address that is not this host's, is not.  No datagram is sent. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "check.h"
#include "ownsock.h"

static void ours_and_not(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	unsigned short port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	port = ntohs(a.sin_port);
	CHECK(ownsock_udp((struct sockaddr *)&a) == 1);
	close(fd);
	/* Closed: the port is no longer ours. */
	CHECK(ownsock_udp((struct sockaddr *)&a) == 0);
	/* A documentation address is no address of this host. */
	inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
	a.sin_port = htons(port);
	CHECK(ownsock_udp((struct sockaddr *)&a) == 0);
}

int main(void)
{
	RUN("ownsock", ours_and_not);
	return check_failed_total ? 1 : 0;
}
