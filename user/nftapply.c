/* Applying the TPROXY rules all or nothing, recording what was applied,
 * removing exactly that, and checking what is in place (for doctor). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "nftrules.h"
#include "sysenv.h"

/* Runs a command of words (cmd split at spaces) with input on its stdin;
 * its output (both streams) goes to out.  Its exit status, or -1. */
static int run(const char *cmd, const char *input, char *out, size_t outlen)
{
	char buf[160], *argv[24], *save = NULL;
	int in[2] = { -1, -1 }, outp[2], argc = 0, status;
	size_t used = 0;
	ssize_t n;
	pid_t pid;

	snprintf(buf, sizeof(buf), "%s", cmd);
	for (char *w = strtok_r(buf, " ", &save); w && argc < 23; w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	argv[argc] = NULL;
	out[0] = 0;
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(in, O_CLOEXEC) < 0) {
		snprintf(out, outlen, "pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(out, outlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(outp[1], 1);
		dup2(outp[1], 2);
		execvp(argv[0], argv);
		fprintf(stderr, "%s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(outp[1]);
	if (input && write(in[1], input, strlen(input)) < 0) {
		/* its exit status says what went wrong */
	}
	close(in[1]);
	while (used + 1 < outlen && (n = read(outp[0], out + used, outlen - used - 1)) > 0)
		used += (size_t)n;
	out[used] = 0;
	while (used && (out[used - 1] == '\n' || out[used - 1] == ' '))
		out[--used] = 0;
	close(outp[0]);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void rules_state_path(const struct rules_opts *r, char *path, size_t len)
{
	struct stat st;

	if (r->state) {
		snprintf(path, len, "%s", r->state);
		return;
	}
	/* /run is shared by every network namespace; the record is per netns. */
	if (stat("/proc/self/ns/net", &st) < 0)
		st.st_ino = 0;
	snprintf(path, len, RULES_STATE_DIR "/rules-netns-%lu", (unsigned long)st.st_ino);
}

/* Undo lines, each run.  Returns how many failed for a reason other than
 * "it is gone already" (removed by hand, or with its namespace). */
static int undo_lines(char lines[][160], int n)
{
	char out[1024];
	int bad = 0;

	for (int i = 0; i < n; i++) {
		if (run(lines[i], NULL, out, sizeof(out)) == 0)
			continue;
		if (strstr(out, "No such") || strstr(out, "No chain") ||
		    strstr(out, "does a matching rule exist")) {
			fprintf(stderr, "sproxy-bpf: rules: '%s': gone already\n", lines[i]);
			continue;
		}
		fprintf(stderr, "sproxy-bpf: rules: '%s' failed: %s\n", lines[i], out);
		bad++;
	}
	return bad;
}

/* The record of this namespace, or NULL.  A namespace's inode number can
 * be used again once it is gone; its cookie cannot: a record with another
 * cookie is a dead namespace's, and is deleted. */
FILE *rules_record_open(const struct rules_opts *r, char *path, size_t len)
{
	unsigned long long cookie = 0, now = sysenv_netns_cookie();
	char line[200];
	FILE *fp;

	rules_state_path(r, path, len);
	fp = fopen(path, "re");
	if (!fp)
		return NULL;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "netns-cookie %llu", &cookie) == 1)
			break;
	if (cookie && now && cookie != now) {
		fprintf(stderr, "sproxy-bpf: rules: %s is the record of a network namespace "
			"that is gone: deleted\n", path);
		fclose(fp);
		unlink(path);
		errno = ENOENT;
		return NULL;
	}
	rewind(fp);
	return fp;
}

/* What would collide with ours: an earlier apply, the table in use. */
static int preflight(const struct rules_opts *r, const char *path)
{
	char out[4096], cmd[160], p2[256];
	FILE *rec = rules_record_open(r, p2, sizeof(p2));

	if (rec) {
		fclose(rec);
		fprintf(stderr, "sproxy-bpf: rules: already applied in this network namespace "
			"(%s records it); run 'sproxy-bpf rules --remove' first\n", path);
		return -1;
	}
	for (int v6 = 0; v6 <= r->ipv6; v6++) {
		snprintf(cmd, sizeof(cmd), "ip %s route show table %u", v6 ? "-6" : "-4", r->table);
		if (run(cmd, NULL, out, sizeof(out)) == 0 && out[0]) {
			fprintf(stderr, "sproxy-bpf: rules: routing table %u is in use (%s: %s); "
				"choose another --table\n", r->table, cmd, out);
			return -1;
		}
		snprintf(cmd, sizeof(cmd), "ip %s rule show table %u", v6 ? "-6" : "-4", r->table);
		if (run(cmd, NULL, out, sizeof(out)) == 0 && out[0]) {
			fprintf(stderr, "sproxy-bpf: rules: an ip rule already looks up table %u "
				"(%s); choose another --table\n", r->table, out);
			return -1;
		}
	}
	return 0;
}

static int write_state(const char *path, const struct plan *p, int upto)
{
	FILE *fp;
	int fd;

	mkdir(RULES_STATE_DIR, 0700);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || !(fp = fdopen(fd, "w"))) {
		fprintf(stderr, "sproxy-bpf: rules: cannot record what was applied in %s: %s\n",
			path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fprintf(fp, "# Applied by 'sproxy-bpf rules --apply'; '--remove' runs these, in order.\n"
		"netns-cookie %llu\n", (unsigned long long)sysenv_netns_cookie());
	for (int i = upto - 1; i >= 0; i--)
		for (int k = 0; k < p->s[i].n_undo; k++)
			fprintf(fp, "undo %s\n", p->s[i].undo[k]);
	if (fclose(fp) != 0) {
		unlink(path);
		return -1;
	}
	return 0;
}

static void rollback(const struct plan *p, int done)
{
	for (int i = done - 1; i >= 0; i--)
		undo_lines((char (*)[160])p->s[i].undo, p->s[i].n_undo);
}

static int apply(const struct rules_opts *r)
{
	struct plan p;
	char path[256], out[4096];
	int i;

	rules_state_path(r, path, sizeof(path));
	if (preflight(r, path) < 0)
		return 1;
	rules_build(&p, r);
	for (i = 0; i < p.n; i++) {
		if (run(p.s[i].cmd, p.s[i].input, out, sizeof(out)) != 0) {
			fprintf(stderr, "sproxy-bpf: rules: '%s' failed: %s; nothing is left "
				"applied%s\n", p.s[i].cmd, out,
				strstr(out, "TPROXY") || strstr(out, "tproxy") ?
				" (no TPROXY support in this kernel? see 'sproxy-bpf doctor')" : "");
			rollback(&p, i);
			rules_plan_free(&p);
			return 1;
		}
	}
	if (write_state(path, &p, p.n) < 0) {
		rollback(&p, p.n);
		rules_plan_free(&p);
		return 1;
	}
	rules_plan_free(&p);
	printf("sproxy-bpf: rules applied: TPROXY to port %u, mark 0x%x, table %u%s%s "
	       "(recorded in %s)\n", r->port, r->mark, r->table, r->ipv6 ? ", IPv4 and IPv6" : "",
	       r->local ? ", this host's traffic too" : "", path);
	return 0;
}

/* Only what the record says, and only the commands apply uses. */
static int remove_applied(const struct rules_opts *r)
{
	char path[256], line[200], lines[64][160];
	int n = 0, bad;
	FILE *fp;

	fp = rules_record_open(r, path, sizeof(path));
	if (!fp) {
		if (errno == ENOENT || errno == 0) {
			printf("sproxy-bpf: rules: nothing applied in this network namespace "
			       "(no %s)\n", path);
			return 0;
		}
		fprintf(stderr, "sproxy-bpf: rules: %s: %s\n", path, strerror(errno));
		return 1;
	}
	while (n < 64 && fgets(line, sizeof(line), fp)) {
		line[strcspn(line, "\n")] = 0;
		if (strncmp(line, "undo ", 5) != 0)
			continue;
		if (strncmp(line + 5, "nft ", 4) && strncmp(line + 5, "ip ", 3) &&
		    strncmp(line + 5, "iptables ", 9) && strncmp(line + 5, "ip6tables ", 10)) {
			fprintf(stderr, "sproxy-bpf: rules: %s: not ours, ignored: %s\n", path, line);
			continue;
		}
		snprintf(lines[n++], sizeof(lines[0]), "%.159s", line + 5);
	}
	fclose(fp);
	bad = undo_lines(lines, n);
	if (bad) {
		fprintf(stderr, "sproxy-bpf: rules: %d of %d undo steps failed; %s kept, "
			"--remove tries them again\n", bad, n, path);
		return 1;
	}
	unlink(path);
	printf("sproxy-bpf: rules removed (%d steps)\n", n);
	return 0;
}

int rules_run(const struct rules_opts *r)
{
	struct plan p;

	switch (r->action) {
	case RULES_PRINT:
		rules_build(&p, r);
		rules_print(&p, r);
		rules_plan_free(&p);
		return 0;
	case RULES_APPLY:
		return apply(r);
	case RULES_REMOVE:
		return remove_applied(r);
	}
	return 1;
}

int rules_check(const struct rules_opts *r, char *why, size_t whylen)
{
	char out[4096], cmd[160];
	int have = 0, want = 0;

	why[0] = 0;
	want++;
	if (run("nft list table ip " RULES_NAME, NULL, out, sizeof(out)) == 0 ||
	    run("nft list table inet " RULES_NAME, NULL, out, sizeof(out)) == 0 ||
	    run("iptables -w -t mangle -S " IPT_PRE, NULL, out, sizeof(out)) == 0)
		have++;
	else
		snprintf(why, whylen, "no TPROXY rules (nft table %s or iptables chain " IPT_PRE ")",
			 RULES_NAME);
	for (int v6 = 0; v6 <= r->ipv6; v6++) {
		const char *f = v6 ? "-6" : "-4";

		snprintf(cmd, sizeof(cmd), "ip %s rule show table %u", f, r->table);
		want++;
		if (run(cmd, NULL, out, sizeof(out)) == 0 && out[0])
			have++;
		else
			snprintf(why + strlen(why), whylen - strlen(why), "%sno 'ip %s rule ... "
				 "lookup %u'", why[0] ? "; " : "", f, r->table);
		snprintf(cmd, sizeof(cmd), "ip %s route show table %u", f, r->table);
		want++;
		if (run(cmd, NULL, out, sizeof(out)) == 0 && strncmp(out, "local ", 6) == 0)
			have++;
		else
			snprintf(why + strlen(why), whylen - strlen(why), "%sno local route on lo "
				 "in %s table %u%s", why[0] ? "; " : "", v6 ? "IPv6" : "IPv4", r->table,
				 out[0] ? " (it has another kind of route)" : "");
	}
	return have == want ? 1 : have == 0 ? 0 : -1;
}

int rules_local_unroutable(const struct rules_opts *r)
{
	char out[4096];
	int local = 0;

	if (run("nft list table ip " RULES_NAME, NULL, out, sizeof(out)) == 0 ||
	    run("nft list table inet " RULES_NAME, NULL, out, sizeof(out)) == 0)
		local = strstr(out, "chain output") != NULL;
	if (!local)
		local = run("iptables -w -t mangle -S SPROXY_BPF_OUT", NULL, out, sizeof(out)) == 0;
	if (!local)
		return 0;
	for (int v6 = 0; v6 <= r->ipv6; v6++)
		if (run(v6 ? "ip -6 route show default" : "ip -4 route show default", NULL, out,
			sizeof(out)) == 0 && !out[0])
			return v6 ? 6 : 4;
	return 0;
}
