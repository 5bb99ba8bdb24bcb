/* --pin: what a takeover must agree with, and the pin directory's life.
 * The directory cases need root and /sys/fs/bpf; they make
 * /sys/fs/bpf/sproxy-bpf-test-<pid>-unit and remove it. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "addr.h"
#include "check.h"
#include "pin.h"

static char err[1024];

static void meta(struct pin_meta *m, const char *listen4, uint32_t map_size)
{
	struct sockaddr_storage ss;

	memset(m, 0, sizeof(*m));
	m->magic = PIN_MAGIC;
	m->size = sizeof(*m);
	m->pid = 42;
	m->mark = 0x5350;
	m->map_size = map_size;
	m->pool_size = 1024;
	m->target_id = 7;
	snprintf(m->target, sizeof(m->target), "/sys/fs/cgroup/app");
	addr_parse(listen4, 0, &ss, NULL, 0);
	addr_to_sproxy((struct sockaddr *)&ss, &m->listen4);
}

static void takeover_must_agree(void)
{
	struct pin p = { .dir = "/sys/fs/bpf/x", .takeover = 1 };
	struct pin_meta want;

	meta(&p.old, "127.0.0.1:3333", 65536);
	meta(&want, "127.0.0.1:3333", 65536);
	CHECK(pin_check(&p, &want, err, sizeof(err)) == 0);
	meta(&want, "127.0.0.1:4444", 65536);
	CHECK(pin_check(&p, &want, err, sizeof(err)) < 0);
	CHECK(strstr(err, "127.0.0.1:3333") && strstr(err, "127.0.0.1:4444"));
	meta(&want, "127.0.0.1:3333", 1024);
	CHECK(pin_check(&p, &want, err, sizeof(err)) < 0);
	CHECK(strstr(err, "--map-size 65536") != NULL);
	/* The same path, another id: the cgroup made again. */
	meta(&want, "127.0.0.1:3333", 65536);
	want.target_id = 8;
	CHECK(pin_check(&p, &want, err, sizeof(err)) == 0);
	snprintf(want.target, sizeof(want.target), "/sys/fs/cgroup/other");
	CHECK(pin_check(&p, &want, err, sizeof(err)) < 0);
	CHECK(strstr(err, "/sys/fs/cgroup/app") != NULL);
	/* Nothing pinned before: nothing to agree with. */
	p.takeover = 0;
	CHECK(pin_check(&p, &want, err, sizeof(err)) == 0);
}

static void refuses_other_filesystems(void)
{
	struct pin p;

	CHECK(pin_open(&p, "/tmp", err, sizeof(err)) < 0);
	CHECK(strstr(err, "not on a BPF filesystem") != NULL);
	CHECK(pin_open(&p, "/tmp/sproxy-bpf-no-such-dir", err, sizeof(err)) < 0);
	CHECK(strstr(err, "not on a BPF filesystem") != NULL);
	if (pin_is_bpffs("/sys/fs/bpf")) {
		CHECK(pin_open(&p, "/sys/fs/bpf", err, sizeof(err)) < 0);
		CHECK(strstr(err, "root") != NULL);
	}
}

static void directory_life(void)
{
	char dir[128];
	struct pin p;
	struct pin_meta m;
	struct stat st;

	if (!pin_is_bpffs("/sys/fs/bpf") || geteuid() != 0) {
		printf("  (no /sys/fs/bpf or not root: skipped)\n");
		return;
	}
	snprintf(dir, sizeof(dir), "/sys/fs/bpf/sproxy-bpf-test-%d-unit", (int)getpid());
	CHECK(pin_open(&p, dir, err, sizeof(err)) == 0);
	CHECK(p.takeover == 0);
	CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
	meta(&m, "127.0.0.1:3333", 65536);
	CHECK(pin_write_meta(&p, &m, err, sizeof(err)) == 0);
	CHECK(pin_open(&p, dir, err, sizeof(err)) == 0);
	CHECK(p.takeover == 1 && p.old.pid == 42 && p.old.target_id == 7);
	CHECK(pin_remove(dir, NULL, err, sizeof(err)) == 1);
	CHECK(stat(dir, &st) < 0);
}

int main(void)
{
	RUN("pin", takeover_must_agree);
	RUN("pin", refuses_other_filesystems);
	RUN("pin", directory_life);
	CHECK_EXIT();
}
