/* The connection log: how names a process chose are written (JSON keeps
 * UTF-8, escapes the rest; text escapes control bytes), its file's mode,
 * and a write error said once. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "check.h"
#include "log.h"
#include "sproxy.h"

static char dir[] = "/tmp/sproxy-bpf-test_log.XXXXXX";

static void slurp(const char *path, char *buf, size_t len)
{
	FILE *fp = fopen(path, "r");
	size_t n = fp ? fread(buf, 1, len - 1, fp) : 0;

	buf[n] = 0;
	if (fp)
		fclose(fp);
}

/* One line for a process named comm (up to 16 bytes, as the kernel gives
 * it: not always NUL-terminated), in JSON or text; the line comes back. */
static void line_for(const char *comm, size_t n, int json, char *out, size_t outlen)
{
	struct sproxy_proc p;
	struct conn_log c = { .proto = "tcp", .proc = &p, .result = "ok" };
	char path[256];

	memset(&p, 0, sizeof(p));
	memcpy(p.comm, comm, n);
	p.tgid = 42;
	snprintf(path, sizeof(path), "%s/line.log", dir);
	unlink(path);
	CHECK(connlog_open(path, json) == 0);
	connlog_write(&c);
	connlog_close();
	slurp(path, out, outlen);
}

/* The route: rule and route after the host, in text and JSON; a line
 * without a decision has neither. */
static void route_fields(void)
{
	struct conn_log c = { .proto = "tcp", .host = "tls.test", .sniffed = "tls",
			      .rule = 9, .route = "REJECT", .result = "rejected" };
	char path[256], out[1024];

	snprintf(path, sizeof(path), "%s/route.log", dir);
	for (int json = 0; json < 2; json++) {
		unlink(path);
		CHECK(connlog_open(path, json) == 0);
		connlog_write(&c);
		c.route = NULL;
		connlog_write(&c);
		c.route = "REJECT";
		connlog_close();
		slurp(path, out, sizeof(out));
		if (json)
			CHECK(strstr(out, "\"host\":\"tls.test\",\"sniffed\":\"tls\",\"rule\":9,"
				     "\"route\":\"REJECT\",") != NULL);
		else
			CHECK(strstr(out, " host=tls.test sniffed=tls rule=9 route=REJECT path=proxy up=0 ") !=
			      NULL);
		CHECK(strstr(strchr(out, '\n'), "rule") == NULL);
		if (check_failed_now)
			printf("  got: %s", out);
	}
}

static void json_keeps_utf8(void)
{
	char out[1024];

	line_for("caf\xc3\xa9", 5, 1, out, sizeof(out));
	CHECK(strstr(out, "\"comm\":\"caf\xc3\xa9\"") != NULL);
	line_for("\xe6\x97\xa5\xe6\x9c\xac", 6, 1, out, sizeof(out));
	CHECK(strstr(out, "\"comm\":\"\xe6\x97\xa5\xe6\x9c\xac\"") != NULL);
	if (check_failed_now)
		printf("  got: %s", out);
}

static void json_escapes_the_rest(void)
{
	char out[1024];

	/* control bytes, quotes; a lone Latin-1 byte; a sequence the kernel
	 * cut at 16 bytes; an overlong '/'; a C1 control (U+009B) */
	line_for("a\x1b" "b\"\\", 5, 1, out, sizeof(out));
	CHECK(strstr(out, "\"comm\":\"a\\u001bb\\\"\\\\\"") != NULL);
	line_for("caf\xe9", 4, 1, out, sizeof(out));
	CHECK(strstr(out, "\"comm\":\"caf\\ufffd\"") != NULL);
	line_for("aaaaaaaaaaaaaa\xe6\x97", 16, 1, out, sizeof(out));
	CHECK(strstr(out, "\"comm\":\"aaaaaaaaaaaaaa\\ufffd\\ufffd\"") != NULL);
	line_for("\xc0\xaf", 2, 1, out, sizeof(out));
	CHECK(strstr(out, "\"comm\":\"\\ufffd\\ufffd\"") != NULL);
	line_for("x\xc2\x9by", 4, 1, out, sizeof(out));
	CHECK(strstr(out, "\"comm\":\"x\\u009by\"") != NULL);
	if (check_failed_now)
		printf("  got: %s", out);
}

static void text_escapes(void)
{
	char out[1024];

	line_for("caf\xc3\xa9", 5, 0, out, sizeof(out));
	CHECK(strstr(out, " comm=caf\xc3\xa9 ") != NULL);
	line_for("e\x1b[31m", 6, 0, out, sizeof(out));
	CHECK(strchr(out, '\x1b') == NULL);
	CHECK(strstr(out, " comm=e\\x1b[31m ") != NULL);
	line_for("caf\xe9", 4, 0, out, sizeof(out));
	CHECK(strstr(out, " comm=caf\\xe9 ") != NULL);
	if (check_failed_now)
		printf("  got: %s", out);
}

static void escape_for_stderr(void)
{
	char out[64];

	CHECK_STREQ(log_escape(out, sizeof(out), "caf\xc3\xa9", 16), "caf\xc3\xa9");
	CHECK_STREQ(log_escape(out, sizeof(out), "e\x1b[31mx\x7f", 16), "e\\x1b[31mx\\x7f");
	CHECK_STREQ(log_escape(out, sizeof(out), "0123456789abcdefXYZ", 16), "0123456789abcdef");
	CHECK_STREQ(log_escape(out, 8, "\x01\x02\x03", 3), "\\x01");
}

/* A line longer than the writer's 4 KiB buffer comes out whole and in
 * order, escapes that straddle the buffer's end included; numbers and the
 * duration as printf would write them. */
static void long_line_whole(void)
{
	static char name[10001], out[40000];
	struct conn_log c = { .proto = "tcp", .cgroup = name, .up = 18446744073709551615ull,
			      .down = 7, .duration = 12.3456, .result = "ok" };
	char path[256], want[64], *at;
	size_t i;

	for (i = 0; i < sizeof(name) - 1; i++)
		name[i] = i % 1000 == 999 ? '\x01' : (char)('a' + i % 26);
	snprintf(path, sizeof(path), "%s/long.log", dir);
	for (int json = 0; json < 2; json++) {
		unlink(path);
		CHECK(connlog_open(path, json) == 0);
		connlog_write(&c);
		c.cgroup = "/short";
		connlog_write(&c);
		c.cgroup = name;
		connlog_close();
		slurp(path, out, sizeof(out));
		at = strstr(out, json ? "\"cgroup\":\"" : " cgroup=");
		CHECK(at != NULL);
		if (!at)
			continue;
		at += json ? 10 : 8;
		for (i = 0; i < sizeof(name) - 1 && *at; i++) {
			if (name[i] == '\x01') {
				const char *esc = json ? "\\u0001" : "\\x01";

				if (strncmp(at, esc, strlen(esc)) != 0)
					break;
				at += strlen(esc);
			} else if (*at++ != name[i]) {
				break;
			}
		}
		CHECK(i == sizeof(name) - 1);
		snprintf(want, sizeof(want), json ? "\"up\":%llu,\"down\":7,\"duration\":12.346,"
					: " up=%llu down=7 duration=12.346 ", 18446744073709551615ull);
		CHECK(strstr(at, want) != NULL);
		at = strchr(at, '\n');
		CHECK(at && strstr(at + 1, json ? "\"cgroup\":\"/short\"" : " cgroup=/short ") &&
		      strchr(at + 1, '\n') && strchr(at + 1, '\n')[1] == 0);
		if (check_failed_now)
			printf("  json=%d, at name byte %zu\n", json, i);
	}
}

static void new_file_is_private(void)
{
	char path[256];
	struct stat st;
	mode_t old = umask(022);

	snprintf(path, sizeof(path), "%s/mode.log", dir);
	CHECK(connlog_open(path, 0) == 0);
	connlog_close();
	umask(old);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
}

/* /dev/full: every write fails with ENOSPC.  Said once on stderr. */
static void write_error_said_once(void)
{
	struct sproxy_proc p = { .tgid = 1 };
	struct conn_log c = { .proto = "tcp", .proc = &p, .result = "ok" };
	char path[256], out[4096], *at;
	int saved = dup(2), fd, n = 0;

	snprintf(path, sizeof(path), "%s/stderr", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
	CHECK(connlog_open("/dev/full", 0) == 0);
	for (int i = 0; i < 3; i++)
		connlog_write(&c);
	connlog_close();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	slurp(path, out, sizeof(out));
	for (at = out; (at = strstr(at, "/dev/full")); at++)
		n++;
	CHECK(n == 1);
	CHECK(strstr(out, "No space left on device") != NULL);
	if (check_failed_now)
		printf("  stderr: %s\n", out);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN("log", route_fields);
	RUN("log", json_keeps_utf8);
	RUN("log", json_escapes_the_rest);
	RUN("log", text_escapes);
	RUN("log", escape_for_stderr);
	RUN("log", long_line_whole);
	RUN("log", new_file_is_private);
	RUN("log", write_error_said_once);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			printf("  could not remove %s\n", dir);
	}
	CHECK_EXIT();
}
