/* The config file: every line through the command line's own checks, bad
 * lines named by file and line, and a reload that reads the file again
 * without touching the options in use when it fails. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "check.h"
#include "cli.h"
#include "daemon.h"
#include "rules.h"

static int load(struct options *o, const char *text, char *err, size_t errlen)
{
	return cli_apply_config_mem(o, "t.conf", text, strlen(text), err, errlen);
}

static void values(void)
{
	struct options o = { 0 };
	char err[2048] = "";
	const char *text =
		"# comment\n"
		"; comment\n"
		"\n"
		"listen = 127.0.0.1:4000\n"
		"   listen=[::1]:4000   \n"
		"map-size = 128\n"
		"mark = 0x10\n"
		"json = true\n"
		"verbose = yes\n"
		"reattach = on\n"
		"reattach = off\n"
		"log = /var/log/sproxy ; not a comment\n"
		"fakeip-exclude = lan\n"
		"fakeip-exclude = home.arpa\n"
		"rule = DOMAIN-SUFFIX,example.com,REJECT\n"
		"rule: MATCH,DIRECT\n";

	CHECK(load(&o, text, err, sizeof(err)) == 0);
	CHECK_STREQ(err, "");
	CHECK(o.n_listen == 2 && o.listen[1].ss_family == AF_INET6);
	CHECK(o.map_size == 128 && o.mark == 16);
	CHECK(o.json == 1 && o.verbose == 1 && o.reattach == 0);
	CHECK_STREQ(o.log_path, "/var/log/sproxy ; not a comment");
	CHECK(o.n_fakeip_exclude == 2);
	CHECK_STREQ(o.fakeip_exclude[1], "home.arpa");
	CHECK(cli_finish(&o, err, sizeof(err)) == 0);
	CHECK(rules_count(o.rules) == 2);
	CHECK_STREQ(rules_line(o.rules, 1), "DOMAIN-SUFFIX,example.com,REJECT");
	CHECK_STREQ(rules_line(o.rules, 2), "MATCH,DIRECT");
	cli_options_free(&o);
	CHECK(o.rules == NULL && o.owned == NULL);
}

static const struct {
	const char *text;
	const char *msg;              /* in err, with its file and line */
} bad[] = {
	{ "map-size = 1\n", "t.conf:1: --map-size wants a decimal number from 64" },
	{ "\n\nlisten = 1.2.3.4\n", "t.conf:3: --listen: '1.2.3.4' needs a port" },
	{ "relay = zero\n", "t.conf:1: --relay is 'splice' or 'copy'" },
	{ "json = maybe\n", "t.conf:1: json is true or false, not 'maybe'" },
	{ "json = 1\nfoo = bar\n", "t.conf:2: unknown option 'foo'" },
	{ "help = 1\n", "t.conf:1: unknown option 'help'" },
	{ "config = other.conf\n", "t.conf:1: a config file cannot name another" },
	{ "[main]\nlog = x\n", "t.conf:1: sections are not used" },
	{ "just words\n", "t.conf:1: not 'option = value': 'just words'" },
	{ "log =\n", "t.conf:1: log needs a value" },
	{ "rule = DOMAIN,a..b,DIRECT\n", "t.conf:1: --rule 'DOMAIN,a..b,DIRECT': 'a..b' is not" },
	{ "rule = NOPE,x,DIRECT\n", "'NOPE' is not a rule type" },
	{ "fakeip-range = 127.0.0.0/16\n", "t.conf:1: --fakeip-range '127.0.0.0/16' overlaps" },
};

static void bad_lines(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct options o = { 0 };
		char err[2048] = "";

		if (load(&o, bad[i].text, err, sizeof(err)) == 0 || !strstr(err, bad[i].msg)) {
			printf("  '%s': want '%s', got '%s'\n", bad[i].text, bad[i].msg, err);
			check_failed_now = 1;
		}
		cli_options_free(&o);
	}
}

/* Every bad line is named, not only the first; the good ones around them
 * do not hide them. */
static void all_errors(void)
{
	struct options o = { 0 };
	char err[2048] = "", line[10000];
	const char nul[] = "json = true\nlog = a\0b\nmap-size = 1\n";

	CHECK(load(&o, "map-size = 1\njson = true\nudp-flows = 0\n", err, sizeof(err)) < 0);
	CHECK(strstr(err, "t.conf:1: --map-size") && strstr(err, "\nt.conf:3: --udp-flows"));
	cli_options_free(&o);
	/* A NUL byte: refused, not cut short silently. */
	CHECK(cli_apply_config_mem(&o, "t.conf", nul, sizeof(nul) - 1, err, sizeof(err)) < 0);
	CHECK(strstr(err, "t.conf:2: a NUL byte") && strstr(err, "t.conf:3: --map-size"));
	cli_options_free(&o);
	/* An over-long line: refused, and the next line is line 2. */
	memcpy(line, "log = ", 6);
	memset(line + 6, 'a', 9000);
	strcpy(line + 9006, "\nmap-size = 1\n");
	CHECK(load(&o, line, err, sizeof(err)) < 0);
	CHECK(strstr(err, "t.conf:1: a line longer than") && strstr(err, "t.conf:2: --map-size"));
	CHECK(o.log_path == NULL);
	cli_options_free(&o);
	/* Unknown targets are found once all is read, named by file and line. */
	CHECK(load(&o, "json = 1\nrule = DOMAIN,a.example,Elsewhere\n", err, sizeof(err)) == 0);
	CHECK(cli_finish(&o, err, sizeof(err)) < 0);
	CHECK(strstr(err, "t.conf:2: rule 'DOMAIN,a.example,Elsewhere': unknown target "
		      "'Elsewhere'"));
	cli_options_free(&o);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* The same command line read again, with the file changed under it. */
static void reparse(void)
{
	char path[] = "/tmp/sproxy-bpf-test-config-XXXXXX";
	char err[2048] = "";
	int fd = mkstemp(path);
	char *argv[] = { "sproxy-bpf", "attach", "--rule", "DOMAIN,first.example,REJECT",
			 "cg", "--config", path, "--udp-timeout", "5", NULL };
	struct options a, b;

	CHECK(fd >= 0);
	close(fd);
	write_file(path, "rule = DOMAIN,second.example,DIRECT\nudp-timeout = 9\n");
	CHECK(cli_reparse(9, argv, &a, err, sizeof(err)) == 0);
	CHECK_STREQ(a.cgroup, "cg");
	/* In the order written: the command line's rule, then the file's; the
	 * command line's --udp-timeout comes after the file and wins. */
	CHECK(a.rules && rules_count(a.rules) == 2);
	CHECK_STREQ(rules_line(a.rules, 2), "DOMAIN,second.example,DIRECT");
	CHECK(a.udp_timeout == 5);
	write_file(path, "rule = DOMAIN,third.example,DIRECT\nrule = MATCH,REJECT\n");
	CHECK(cli_reparse(9, argv, &b, err, sizeof(err)) == 0);
	CHECK(b.rules && rules_count(b.rules) == 3);
	CHECK_STREQ(rules_line(b.rules, 3), "MATCH,REJECT");
	cli_options_free(&b);
	/* A bad file: an error, nothing half-made, the first set intact. */
	write_file(path, "rule = MATCH,Nowhere\n");
	CHECK(cli_reparse(9, argv, &b, err, sizeof(err)) < 0);
	CHECK(strstr(err, ":1: rule 'MATCH,Nowhere': unknown target"));
	CHECK(b.rules == NULL && b.owned == NULL);
	write_file(path, "map-size = 1\n");
	CHECK(cli_reparse(9, argv, &b, err, sizeof(err)) < 0);
	CHECK(strstr(err, ":1: --map-size"));
	CHECK(rules_count(a.rules) == 2);
	CHECK_STREQ(rules_line(a.rules, 1), "DOMAIN,first.example,REJECT");
	cli_options_free(&a);
	unlink(path);
}

int main(void)
{
	RUN("config", values);
	RUN("config", bad_lines);
	RUN("config", all_errors);
	RUN("config", reparse);
	CHECK_EXIT();
}
