/* Upstream URLs and the parsers of what SOCKS5 and HTTP CONNECT servers
 * answer: complete, cut anywhere, refused, and garbage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "addr.h"
#include "check.h"
#include "connector.h"
#include "daemon.h"
#include "upstream.h"

static struct upstream u;
static char err[400];

static void url_forms(void)
{
	CHECK(upstream_parse_url("socks5://203.0.113.10:1081", &u, err, sizeof(err)) == 0);
	CHECK(u.kind == UPSTREAM_SOCKS5 && u.port == 1081 && !u.auth);
	CHECK_STREQ(u.host, "203.0.113.10");
	CHECK(upstream_parse_url("socks5h://proxy.example:1080/", &u, err, sizeof(err)) == 0);
	CHECK(u.kind == UPSTREAM_SOCKS5 && u.port == 1080);
	CHECK(upstream_parse_url("http://[2001:db8::1]:3128", &u, err, sizeof(err)) == 0);
	CHECK(u.kind == UPSTREAM_HTTP && u.port == 3128);
	CHECK_STREQ(u.host, "2001:db8::1");
	CHECK(upstream_parse_url("http://proxy", &u, err, sizeof(err)) == 0);
	CHECK(u.port == 1080);
	CHECK(upstream_parse_url("direct", &u, err, sizeof(err)) == 0);
	CHECK(u.kind == UPSTREAM_DIRECT);
}

static void url_credentials(void)
{
	CHECK(upstream_parse_url("socks5://us%65r:p%40ss:w@203.0.113.10:1080", &u, err,
				 sizeof(err)) == 0);
	CHECK(u.auth);
	CHECK_STREQ(u.user, "user");
	CHECK_STREQ(u.pass, "p@ss:w");
	/* An unencoded @ in the password: the last one ends the credentials. */
	CHECK(upstream_parse_url("http://u:a@b@h:1", &u, err, sizeof(err)) == 0);
	CHECK_STREQ(u.pass, "a@b");
	CHECK_STREQ(u.host, "h");
	CHECK(upstream_parse_url("http://u:@h:1", &u, err, sizeof(err)) == 0);
	CHECK(u.auth && u.pass[0] == 0);
}

static void url_bad(void)
{
	static const char *const bad[] = {
		"socks4://h:1", "h:1080", "socks5://", "socks5://:1", "socks5://h:0",
		"socks5://h:65536", "socks5://h:x", "socks5://h:1/path", "socks5://h:1?q",
		"socks5://u%zz:p@h:1", "socks5://u:p%0@h:1", "socks5://u:%00@h:1",
		"socks5://nocolon@h:1", "socks5://:p@h:1", "socks5://[::1:1",
		"socks5://[::1]x:1", "socks5://h h:1", "",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		if (upstream_parse_url(bad[i], &u, err, sizeof(err)) == 0)
			printf("  accepted: %s\n", bad[i]);
		CHECK(upstream_parse_url(bad[i], &u, err, sizeof(err)) < 0 && err[0]);
	}
	/* The message never echoes a password. */
	CHECK(upstream_parse_url("socks5://u:secret@h:99999", &u, err, sizeof(err)) < 0);
	CHECK(!strstr(err, "secret"));
}

static void arg_names(void)
{
	CHECK(upstream_parse_arg("corp=socks5://u:p@203.0.113.10:1080", &u, err, sizeof(err)) == 0);
	CHECK_STREQ(u.name, "corp");
	CHECK_STREQ(u.label, "corp (203.0.113.10:1080)");
	CHECK(!strstr(u.label, "p@"));
	CHECK(upstream_parse_arg("socks5://203.0.113.10:1080", &u, err, sizeof(err)) == 0);
	CHECK_STREQ(u.name, UPSTREAM_DEFAULT);
	CHECK(upstream_parse_arg("direct", &u, err, sizeof(err)) == 0);
	CHECK_STREQ(u.name, UPSTREAM_DEFAULT);
	CHECK(upstream_parse_arg("v6=http://[2001:db8::1]:8080", &u, err, sizeof(err)) == 0);
	CHECK_STREQ(u.label, "v6 ([2001:db8::1]:8080)");
	CHECK(upstream_parse_arg("=direct", &u, err, sizeof(err)) < 0);
	CHECK(upstream_parse_arg("a b=direct", &u, err, sizeof(err)) < 0);
	CHECK(upstream_parse_arg("x=ftp://h", &u, err, sizeof(err)) < 0);
}

static void arg_file(void)
{
	char path[] = "/tmp/sproxy-bpf-test_upstream.XXXXXX", arg[64];
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, "http://u:pw@203.0.113.10:3128\n# comment\n", 40) == 40);
	close(fd);
	snprintf(arg, sizeof(arg), "web=@%s", path);
	chmod(path, 0640);
	CHECK(upstream_parse_arg(arg, &u, err, sizeof(err)) == 0);
	CHECK(u.kind == UPSTREAM_HTTP && u.port == 3128);
	CHECK_STREQ(u.pass, "pw");
	chmod(path, 0644);
	CHECK(upstream_parse_arg(arg, &u, err, sizeof(err)) < 0);
	CHECK(strstr(err, "readable by every user") != NULL);
	unlink(path);
	CHECK(upstream_parse_arg(arg, &u, err, sizeof(err)) < 0);
}

static void socks5_choice(void)
{
	const uint8_t ok[] = { 5, 2 }, http[] = "HTTP/1.1 400";
	int m = -1;

	CHECK(socks5_parse_choice(ok, 0, &m, err, sizeof(err)) == 0);
	CHECK(socks5_parse_choice(ok, 1, &m, err, sizeof(err)) == 0);
	CHECK(socks5_parse_choice(ok, 2, &m, err, sizeof(err)) == 2 && m == 2);
	CHECK(socks5_parse_choice(http, 12, &m, err, sizeof(err)) < 0);
	CHECK(strstr(err, "looks like HTTP") != NULL);
}

static void socks5_auth(void)
{
	const uint8_t ok[] = { 1, 0 }, no[] = { 1, 1 }, bad[] = { 5, 0 };

	CHECK(socks5_parse_auth(ok, 1, err, sizeof(err)) == 0);
	CHECK(socks5_parse_auth(ok, 2, err, sizeof(err)) == 2);
	CHECK(socks5_parse_auth(no, 2, err, sizeof(err)) < 0);
	CHECK(strstr(err, "wrong username or password") != NULL);
	CHECK(socks5_parse_auth(bad, 2, err, sizeof(err)) < 0);
}

static void socks5_reply(void)
{
	const uint8_t v4[] = { 5, 0, 0, 1, 203, 0, 113, 10, 0x04, 0x38, 0xaa };
	const uint8_t v6[] = { 5, 0, 0, 4, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0,
			       0, 0, 0, 1, 0, 80 };
	const uint8_t name[] = { 5, 0, 0, 3, 3, 'a', 'b', 'c', 0, 53 };
	const uint8_t refused[] = { 5, 5 }, odd[] = { 5, 0, 0, 9 };
	struct sockaddr_storage b;
	char a[ADDR_STRLEN];

	for (size_t n = 0; n < 10; n++)
		CHECK(socks5_parse_reply(v4, n, &b, err, sizeof(err)) == 0);
	CHECK(socks5_parse_reply(v4, sizeof(v4), &b, err, sizeof(err)) == 10);
	CHECK_STREQ(addr_str((struct sockaddr *)&b, a, sizeof(a)), "203.0.113.10:1080");
	CHECK(socks5_parse_reply(v6, 21, &b, err, sizeof(err)) == 0);
	CHECK(socks5_parse_reply(v6, 22, &b, err, sizeof(err)) == 22);
	CHECK_STREQ(addr_str((struct sockaddr *)&b, a, sizeof(a)), "[2001:db8::1]:80");
	CHECK(socks5_parse_reply(name, 9, &b, err, sizeof(err)) == 0);
	CHECK(socks5_parse_reply(name, 10, &b, err, sizeof(err)) == 10);
	CHECK(addr_port((struct sockaddr *)&b) == 53);
	CHECK(socks5_parse_reply(refused, 2, &b, err, sizeof(err)) < 0);
	CHECK_STREQ(err, "SOCKS5 reply 5: connection refused by destination");
	CHECK(socks5_parse_reply(odd, 4, &b, err, sizeof(err)) < 0);
}

static void socks5_udp(void)
{
	const uint8_t d4[] = { 0, 0, 0, 1, 192, 0, 2, 1, 0, 53, 'x' };
	const uint8_t frag[] = { 0, 0, 1, 1, 192, 0, 2, 1, 0, 53, 'x' };
	const uint8_t name[] = { 0, 0, 0, 3, 1, 'a', 0, 53 };

	CHECK(socks5_udp_header_len(d4, sizeof(d4)) == 10);
	CHECK(socks5_udp_header_len(d4, 9) < 0);
	CHECK(socks5_udp_header_len(frag, sizeof(frag)) < 0);
	CHECK(socks5_udp_header_len(name, sizeof(name)) == 8);
}

static void socks5_addr(void)
{
	struct target t;
	uint8_t out[300];

	memset(&t, 0, sizeof(t));
	addr_parse("192.0.2.7:443", 0, &t.addr, NULL, 0);
	CHECK(socks5_put_addr(out, sizeof(out), &t) == 7);
	CHECK(out[0] == 1 && out[1] == 192 && out[4] == 7 && out[5] == 1 && out[6] == 0xbb);
	strcpy(t.host, "example.org");
	CHECK(socks5_put_addr(out, sizeof(out), &t) == 15);
	CHECK(out[0] == 3 && out[1] == 11 && memcmp(out + 2, "example.org", 11) == 0);
	CHECK(out[13] == 1 && out[14] == 0xbb);
	CHECK(socks5_put_addr(out, 10, &t) < 0);
}

static void http_reply(void)
{
	const char ok[] = "HTTP/1.1 200 Connection established\r\nProxy-Agent: x\r\n\r\nSSH-2.0";
	const char lf[] = "HTTP/1.0 200 OK\n\nrest";
	int st = 0;
	size_t hdr = strlen(ok) - strlen("SSH-2.0");

	for (size_t n = 0; n < hdr; n++)
		CHECK(http_parse_connect_reply(ok, n, &st, err, sizeof(err)) == 0);
	CHECK(http_parse_connect_reply(ok, strlen(ok), &st, err, sizeof(err)) == (int)hdr);
	CHECK(st == 200);
	CHECK(http_parse_connect_reply(lf, strlen(lf), &st, err, sizeof(err)) == 17);
}

static void http_refused(void)
{
	int st = 0;

	CHECK(http_parse_connect_reply("HTTP/1.1 407 Proxy Authentication Required\r\n",
				       45, &st, err, sizeof(err)) < 0);
	CHECK(st == 407);
	CHECK_STREQ(err, "HTTP 407 Proxy Authentication Required: wrong or missing credentials");
	CHECK(http_parse_connect_reply("HTTP/1.1 403 Forbidden\r\n", 24, &st, err, sizeof(err)) < 0);
	CHECK(strstr(err, "403 Forbidden") != NULL);
	CHECK(http_parse_connect_reply("HTTP/1.1 502\r\n", 14, &st, err, sizeof(err)) < 0);
	CHECK_STREQ(err, "HTTP 502: the upstream could not reach the destination");
	CHECK(http_parse_connect_reply("SSH-2.0-OpenSSH", 15, &st, err, sizeof(err)) < 0);
	CHECK(strstr(err, "not an HTTP reply") != NULL);
	CHECK(http_parse_connect_reply("HTTP/1.1 200 OK\r\nno colon\r\n\r\n", 29, &st, err,
				       sizeof(err)) < 0);
	CHECK(http_parse_connect_reply("HTTP/1.1 2000\r\n\r\n", 17, &st, err, sizeof(err)) < 0);
	CHECK(http_parse_connect_reply("HTTP/1.1 200 \x1b[2J\r\n\r\n", 21, &st, err,
				       sizeof(err)) == 21);
}

static void http_request(void)
{
	struct hs_io io;
	struct target t;
	char why[200];

	memset(&io, 0, sizeof(io));
	memset(&t, 0, sizeof(t));
	io.err = why;
	io.errlen = sizeof(why);
	addr_parse("[2001:db8::5]:443", 0, &t.addr, NULL, 0);
	CHECK(upstream_parse_url("http://u:p@h:1", &u, err, sizeof(err)) == 0);
	CHECK(http_begin(&io, &u, &t) == 0);
	io.out[io.outlen] = 0;
	CHECK_STREQ((char *)io.out, "CONNECT [2001:db8::5]:443 HTTP/1.1\r\n"
		    "Host: [2001:db8::5]:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n");
	strcpy(t.host, "example.org");
	CHECK(upstream_parse_url("http://h:1", &u, err, sizeof(err)) == 0);
	CHECK(http_begin(&io, &u, &t) == 0);
	io.out[io.outlen] = 0;
	CHECK_STREQ((char *)io.out, "CONNECT example.org:443 HTTP/1.1\r\n"
		    "Host: example.org:443\r\n\r\n");
}

int main(void)
{
	RUN("upstream", url_forms);
	RUN("upstream", url_credentials);
	RUN("upstream", url_bad);
	RUN("upstream", arg_names);
	RUN("upstream", arg_file);
	RUN("upstream", socks5_choice);
	RUN("upstream", socks5_auth);
	RUN("upstream", socks5_reply);
	RUN("upstream", socks5_udp);
	RUN("upstream", socks5_addr);
	RUN("upstream", http_reply);
	RUN("upstream", http_refused);
	RUN("upstream", http_request);
	CHECK_EXIT();
}
