/* The command line as a table: arguments in, exit status, message and
 * parsed values out.  cli_parse exits on an error, so each row runs in a
 * child process with stderr captured. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "check.h"
#include "cli.h"
#include "daemon.h"
#include "preflight.h"

struct row {
	const char *args[6];     /* after "sproxy-bpf" */
	int status;              /* exit status; -1: cli_parse returned */
	const char *msg;         /* in stderr (status != -1) */
	const char *field;       /* with status -1: which value to check */
	unsigned long value;
};

static const struct row rows[] = {
	/* Numbers are decimal: a leading zero is not octal, 0x is refused... */
	{ { "attach", "cg", "--udp-flows", "010" }, -1, NULL, "udp_flows", 10 },
	{ { "attach", "cg", "--udp-timeout", "08" }, -1, NULL, "udp_timeout", 8 },
	{ { "attach", "cg", "--udp-flows", "0x10" }, 2, "--udp-flows", NULL, 0 },
	{ { "attach", "cg", "--udp-flows", "+5" }, 2, "--udp-flows", NULL, 0 },
	{ { "attach", "cg", "--udp-flows", " 5" }, 2, "--udp-flows", NULL, 0 },
	{ { "attach", "cg", "--udp-flows", "-1" }, 2, "--udp-flows", NULL, 0 },
	{ { "attach", "cg", "--udp-flows", "" }, 2, "--udp-flows", NULL, 0 },
	{ { "attach", "cg", "--map-size", "63" }, 2, "--map-size", NULL, 0 },
	{ { "attach", "cg", "--connect-timeout", "99999999999999999999999" }, 2,
	  "--connect-timeout", NULL, 0 },
	{ { "attach", "cg", "--fakeip-ttl", "0" }, -1, NULL, "fakeip_ttl", 0 },
	/* ...except where documented: --mark. */
	{ { "attach", "cg", "--mark", "0x10" }, -1, NULL, "mark", 16 },
	{ { "attach", "cg", "--mark", "010" }, -1, NULL, "mark", 10 },
	{ { "attach", "cg", "--mark", "0" }, 2, "--mark", NULL, 0 },
	{ { "attach", "cg", "--mark", "0xg" }, 2, "--mark", NULL, 0 },
	/* CIDRs */
	{ { "attach", "cg", "--bypass", "10.0.0.0/8" }, -1, NULL, "n_bypass", 1 },
	{ { "attach", "cg", "--bypass", "10.0.0.0/-1" }, 2, "--bypass", NULL, 0 },
	{ { "attach", "cg", "--bypass", "10.0.0.0/+8" }, 2, "--bypass", NULL, 0 },
	{ { "attach", "cg", "--bypass", "10.0.0.0/" }, 2, "--bypass", NULL, 0 },
	{ { "attach", "cg", "--bypass", "2001:db8::/129" }, 2, "--bypass", NULL, 0 },
	{ { "attach", "cg", "--fakeip-range", "10.64.0.0/10" }, -1, NULL, "n_bypass", 0 },
	{ { "attach", "cg", "--fakeip-range", "0.0.0.0/0" }, 2, "--fakeip-range", NULL, 0 },
	{ { "attach", "cg", "--fakeip-range", "127.0.0.0/16" }, 2, "loopback", NULL, 0 },
	{ { "attach", "cg", "--fakeip-range", "224.0.0.0/8" }, 2, "multicast", NULL, 0 },
	{ { "attach", "cg", "--fakeip-range", "169.254.0.0/16" }, 2, "link-local", NULL, 0 },
	{ { "attach", "cg", "--fakeip-range", "10.0.0.0/31" }, 2, "--fakeip-range", NULL, 0 },
	{ { "attach", "cg", "--fakeip-range", "::/0" }, 2, "--fakeip-range", NULL, 0 },
	{ { "attach", "cg", "--fakeip-range", "::ffff:0:0/96" }, 2, "IPv4-mapped", NULL, 0 },
	{ { "attach", "cg", "--fakeip-range", "ff02::/64" }, 2, "multicast", NULL, 0 },
	{ { "attach", "cg", "--fakeip-range", "fd00::/64x" }, 2, "--fakeip-range", NULL, 0 },
	/* the rest */
	{ { "attach", "cg", "--reattach" }, -1, NULL, "reattach", 1 },
	{ { "attach", "cg", "--listen", "127.0.0.1:70000" }, 2, "--listen", NULL, 0 },
	{ { "attach", "cg", "--relay", "zero" }, 2, "--relay", NULL, 0 },
	/* The kernel fast path. */
	{ { "attach", "cg" }, -1, NULL, "fast_path_off", 0 },
	{ { "attach", "cg", "--fast-path", "off" }, -1, NULL, "fast_path_off", 1 },
	{ { "attach", "cg", "--fast-path", "maybe" }, 2, "--fast-path", NULL, 0 },
	{ { "attach", "cg" }, -1, NULL, "n_tls_ports", 9 },
	{ { "attach", "cg", "--tls-ports", "443,8000-8100" }, -1, NULL, "tls_ports_1", 8100 },
	{ { "attach", "cg", "--tls-ports", "none" }, -1, NULL, "n_tls_ports", 0 },
	{ { "attach", "cg", "--tls-ports", "0" }, 2, "--tls-ports", NULL, 0 },
	{ { "attach", "cg", "--tls-ports", "9-8" }, 2, "--tls-ports", NULL, 0 },
	{ { "attach", "cg", "--tls-ports", "443," }, -1, NULL, "n_tls_ports", 1 },
	{ { "attach", "cg", "--tls-ports", "4x3" }, 2, "--tls-ports", NULL, 0 },
	{ { "attach", "cg", "--no-such" }, 2, "no-such", NULL, 0 },
	{ { "attach" }, 2, "needs a CGROUP", NULL, 0 },
	{ { "attach", "cg", "more" }, 2, "unexpected argument 'more'", NULL, 0 },
	{ { "detach", "cg" }, 2, "unknown command 'detach'", NULL, 0 },
	{ { NULL }, 2, "Usage", NULL, 0 },
	/* Sniffing: on by default, 100 ms. */
	{ { "attach", "cg" }, -1, NULL, "sniff", 1 },
	{ { "attach", "cg" }, -1, NULL, "sniff_override", 1 },
	{ { "attach", "cg" }, -1, NULL, "sniff_timeout", 100 },
	{ { "attach", "cg", "--sniff", "off" }, -1, NULL, "sniff", 0 },
	{ { "attach", "cg", "--sniff-override", "off" }, -1, NULL, "sniff_override", 0 },
	{ { "attach", "cg", "--sniff-timeout", "50" }, -1, NULL, "sniff_timeout", 50 },
	{ { "attach", "cg", "--sniff", "maybe" }, 2, "--sniff is 'on' or 'off'", NULL, 0 },
	{ { "attach", "cg", "--sniff-override", "yes" }, 2, "--sniff-override is", NULL, 0 },
	{ { "attach", "cg", "--sniff-timeout", "0" }, 2, "--sniff-timeout", NULL, 0 },
	{ { "attach", "cg", "--sniff-timeout", "10001" }, 2, "--sniff-timeout", NULL, 0 },
	/* Rules, the config file, check. */
	{ { "attach", "cg", "--rule", "DOMAIN,a..b,DIRECT" }, 2, "not a domain name", NULL, 0 },
	{ { "attach", "cg", "--rule", "MATCH,Elsewhere" }, 2, "unknown target 'Elsewhere'",
	  NULL, 0 },
	{ { "attach", "cg", "--config", "/nonexistent/sproxy.conf" }, 2, "cannot open", NULL, 0 },
	{ { "check", "--rule", "MATCH,REJECT" }, 0, NULL, NULL, 0 },
	{ { "check", "cg", "--rule", "MATCH,REJECT" }, 0, NULL, NULL, 0 },
	{ { "check", "--rule", "MATCH,Elsewhere" }, 2, "unknown target", NULL, 0 },
	{ { "check", "cg", "more" }, 2, "unexpected argument 'more'", NULL, 0 },
	{ { "check", "--map-size", "1" }, 2, "--map-size", NULL, 0 },
	{ { "--help" }, 0, NULL, NULL, 0 },
};

static unsigned long field(const struct options *o, const char *name)
{
	if (!strcmp(name, "udp_flows")) return o->udp_flows;
	if (!strcmp(name, "udp_timeout")) return o->udp_timeout;
	if (!strcmp(name, "fakeip_ttl")) return o->fakeip_ttl;
	if (!strcmp(name, "mark")) return o->mark;
	if (!strcmp(name, "n_bypass")) return (unsigned long)o->n_bypass;
	if (!strcmp(name, "reattach")) return (unsigned long)o->reattach;
	if (!strcmp(name, "sniff")) return (unsigned long)o->sniff;
	if (!strcmp(name, "sniff_override")) return (unsigned long)o->sniff_override;
	if (!strcmp(name, "sniff_timeout")) return o->sniff_timeout;
	if (!strcmp(name, "fast_path_off")) return (unsigned long)o->fast_path_off;
	if (!strcmp(name, "n_tls_ports")) return (unsigned long)o->n_tls_ports;
	if (!strcmp(name, "tls_ports_1")) return o->tls_ports[1].hi;
	return (unsigned long)-1;
}

/* Runs one row; fills out (stderr) and returns the exit status, or -1 when
 * cli_parse returned, with *value the field's value. */
static int run_row(const struct row *r, char *out, size_t outlen, unsigned long *value)
{
	int errp[2], valp[2], st;
	char *argv[8] = { "sproxy-bpf" };
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	for (int i = 0; i < 6 && r->args[i]; i++)
		argv[i + 1] = (char *)r->args[i];
	if (pipe(errp) < 0 || pipe(valp) < 0)
		return -2;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		static struct options o;
		int argc = 1;

		while (argv[argc])
			argc++;
		dup2(errp[1], 2);
		if (!freopen("/dev/null", "w", stdout))
			_exit(99);
		cli_parse(argc, argv, &o);
		*value = r->field ? field(&o, r->field) : 0;
		if (write(valp[1], value, sizeof(*value)) < 0)
			_exit(99);
		_exit(100);
	}
	close(errp[1]);
	close(valp[1]);
	while (got + 1 < outlen && (n = read(errp[0], out + got, outlen - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = 0;
	if (read(valp[0], value, sizeof(*value)) != sizeof(*value))
		*value = (unsigned long)-1;
	close(errp[0]);
	close(valp[0]);
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st))
		return -3;
	return WEXITSTATUS(st) == 100 ? -1 : WEXITSTATUS(st);
}

static void cli_table(void)
{
	char out[8192];
	unsigned long value;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		int st = run_row(r, out, sizeof(out), &value);
		int ok = st == r->status &&
			 (!r->msg || strstr(out, r->msg)) &&
			 (!r->field || value == r->value);

		if (!ok) {
			printf("  row %zu (%s %s %s %s): status %d want %d; value %lu want %lu; "
			       "stderr: %.200s\n", i, r->args[0] ? r->args[0] : "",
			       r->args[1] ? r->args[1] : "", r->args[2] ? r->args[2] : "",
			       r->args[3] ? r->args[3] : "", st, r->status, value, r->value, out);
			check_failed_now = 1;
		}
	}
}

/* 5.15 to 5.17 load the programs but turn the getsockopt hook's refusals
 * into EFAULT. */
static void kernel_minimum(void)
{
	CHECK(kernel_recent_enough("5.18.0") == 1);
	CHECK(kernel_recent_enough("6.1.0-13-amd64") == 1);
	CHECK(kernel_recent_enough("10.0") == 1);
	CHECK(kernel_recent_enough("5.17.15") == 0);
	CHECK(kernel_recent_enough("5.15.0-91-generic") == 0);
	CHECK(kernel_recent_enough("4.19.0") == 0);
	CHECK(kernel_recent_enough("2.6.58") == 0);
	CHECK(kernel_recent_enough("weird") == -1);
}

int main(void)
{
	RUN("cli", cli_table);
	RUN("cli", kernel_minimum);
	CHECK_EXIT();
}
