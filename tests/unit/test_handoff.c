/* --to: finding the proxy's listening socket in /proc/net/tcp and tcp6,
 * as the kernel prints them (each 32-bit word of the address in the host's
 * order, the port in hex). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "check.h"
#include "handoff.h"

static char tcp[64], tcp6[64];

static const char head[] = "  sl  local_address rem_address   st tx_queue rx_queue tr "
			   "tm->when retrnsmt   uid  timeout inode\n";

static void line4(FILE *fp, int sl, const char *ip, unsigned port, unsigned st,
		  unsigned long ino)
{
	struct in_addr a;

	inet_pton(AF_INET, ip, &a);
	fprintf(fp, "%4d: %08X:%04X 00000000:0000 %02X 00000000:00000000 00:00000000 "
		"00000000     0        0 %lu 1 0000000000000000 100 0 0 10 0\n",
		sl, a.s_addr, port, st, ino);
}

static void line6(FILE *fp, int sl, const char *ip, unsigned port, unsigned st,
		  unsigned long ino)
{
	struct in6_addr a;
	uint32_t w[4];

	inet_pton(AF_INET6, ip, &a);
	memcpy(w, &a, 16);
	fprintf(fp, "%4d: %08X%08X%08X%08X:%04X 00000000000000000000000000000000:0000 %02X "
		"00000000:00000000 00:00000000 00000000     0        0 %lu 1 0000000000000000 "
		"100 0 0 10 0\n", sl, w[0], w[1], w[2], w[3], port, st, ino);
}

static unsigned long find(const char *spec)
{
	struct sockaddr_storage ss;
	char err[128];

	if (addr_parse(spec, 0, &ss, err, sizeof(err)) < 0)
		return (unsigned long)-1;
	return handoff_listener_inode((struct sockaddr *)&ss, tcp, tcp6);
}

static void setup(void)
{
	FILE *fp;

	snprintf(tcp, sizeof(tcp), "/tmp/test_handoff_tcp.%d", (int)getpid());
	snprintf(tcp6, sizeof(tcp6), "/tmp/test_handoff_tcp6.%d", (int)getpid());
	fp = fopen(tcp, "w");
	fputs(head, fp);
	line4(fp, 0, "127.0.0.1", 12345, 0x01, 11);     /* established: not a listener */
	line4(fp, 1, "127.0.0.1", 12345, 0x0A, 12);
	line4(fp, 2, "0.0.0.0", 8081, 0x0A, 13);
	line4(fp, 3, "127.0.0.2", 7000, 0x0A, 14);
	fclose(fp);
	fp = fopen(tcp6, "w");
	fputs(head, fp);
	line6(fp, 0, "::", 9000, 0x0A, 21);
	line6(fp, 1, "::1", 9100, 0x0A, 22);
	line6(fp, 2, "2001:db8::1", 9200, 0x0A, 23);
	fclose(fp);
}

static void listeners(void)
{
	CHECK(find("127.0.0.1:12345") == 12);          /* exact, not the connection */
	CHECK(find("127.0.0.1:8081") == 13);           /* 0.0.0.0 covers it */
	CHECK(find("203.0.113.1:8081") == 13);
	CHECK(find("127.0.0.1:7000") == 0);            /* another address */
	CHECK(find("127.0.0.2:7000") == 14);
	CHECK(find("127.0.0.1:9000") == 21);           /* a dual-stack [::] */
	CHECK(find("[::1]:9000") == 21);
	CHECK(find("[::1]:9100") == 22);
	CHECK(find("127.0.0.1:9100") == 0);            /* ::1 takes no IPv4 */
	CHECK(find("[2001:db8::1]:9200") == 23);
	CHECK(find("[2001:db8::2]:9200") == 0);
	CHECK(find("[::1]:12345") == 0);               /* 127.0.0.1 takes no IPv6 */
	CHECK(find("127.0.0.1:1") == 0);
}

static void missing_files(void)
{
	struct sockaddr_storage ss;
	char err[128];

	addr_parse("127.0.0.1:12345", 0, &ss, err, sizeof(err));
	CHECK(handoff_listener_inode((struct sockaddr *)&ss, "/nonexistent/tcp",
				     "/nonexistent/tcp6") == 0);
}

int main(void)
{
	setup();
	RUN("handoff", listeners);
	RUN("handoff", missing_files);
	unlink(tcp);
	unlink(tcp6);
	CHECK_EXIT();
}
