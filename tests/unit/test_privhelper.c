/* The privileged helper answers only for what it was given before the drop:
 * the paths read then, the log, the store and its .tmp; and reads
 * /proc/PID/exe.  Needs root (the helper drops capabilities). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "privhelper.h"

static char dir[] = "/tmp/sproxy-bpf-privhelper.XXXXXX";
static char rd[PATH_MAX], other[PATH_MAX], logp[PATH_MAX], store[PATH_MAX],
	    tmp[PATH_MAX], otmp[PATH_MAX];

static void setup(void)
{
	int fd;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(rd, sizeof(rd), "%s/config", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	snprintf(logp, sizeof(logp), "%s/conn.log", dir);
	snprintf(store, sizeof(store), "%s/store", dir);
	snprintf(tmp, sizeof(tmp), "%s/store.tmp", dir);
	snprintf(otmp, sizeof(otmp), "%s/other.tmp", dir);
	for (const char *p = rd; p; p = p == rd ? other : NULL) {
		fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		CHECK(fd >= 0 && write(fd, "x\n", 2) == 2);
		close(fd);
	}
	/* Read before the helper starts: it may be read again through it. */
	fd = privhelper_open(rd, PH_READ);
	CHECK(fd >= 0);
	close(fd);
	privhelper_allow_append(logp);
	privhelper_allow_store(store);
	/* Sockets only of a cgroup this process is not in. */
	privhelper_allow_sockets_of("/sproxy-bpf-no-such-cgroup");
	CHECK(privhelper_start("/", "", "/") > 0);
	CHECK(privhelper_active());
}

static void opens_only_what_it_was_given(void)
{
	struct stat st;
	int fd;

	fd = privhelper_open(rd, PH_READ);
	CHECK(fd >= 0);
	close(fd);
	errno = 0;
	CHECK(privhelper_open(other, PH_READ) < 0 && errno == EPERM);
	CHECK(privhelper_open(rd, PH_APPEND) < 0 && errno == EPERM);
	CHECK(privhelper_open("/etc/shadow", PH_READ) < 0 && errno == EPERM);
	fd = privhelper_open(logp, PH_APPEND);
	CHECK(fd >= 0);
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC));
	close(fd);
}

static void writes_only_the_store(void)
{
	struct stat st;
	int fd;

	fd = privhelper_create_excl(tmp);
	CHECK(fd >= 0 && write(fd, "s\n", 2) == 2);
	close(fd);
	CHECK(privhelper_rename(tmp, store) == 0);
	CHECK(stat(store, &st) == 0 && st.st_size == 2 && (st.st_mode & 0777) == 0600);
	CHECK(privhelper_create_excl(otmp) < 0 && errno == EPERM);
	CHECK(privhelper_rename(otmp, other) < 0 && errno == EPERM);
	CHECK(privhelper_rename(tmp, other) < 0 && errno == EPERM);
	CHECK(privhelper_unlink(otmp) < 0 && errno == EPERM);
	/* A planted symlink is replaced, never followed. */
	CHECK(symlink(other, tmp) == 0);
	fd = privhelper_create_excl(tmp);
	CHECK(fd >= 0);
	close(fd);
	CHECK(lstat(tmp, &st) == 0 && S_ISREG(st.st_mode));
	CHECK(privhelper_unlink(tmp) == 0);
}

static void reads_exe(void)
{
	char want[PATH_MAX], got[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", want, sizeof(want) - 1), m;

	CHECK(n > 0);
	want[n > 0 ? n : 0] = 0;
	m = privhelper_exe((uint32_t)getpid(), got, sizeof(got) - 1);
	CHECK(m == n);
	got[m > 0 ? m : 0] = 0;
	CHECK_STREQ(got, want);
	CHECK(privhelper_exe(0, got, sizeof(got)) < 0);
}

/* A process outside the captured cgroup keeps its sockets. */
static void no_socket_of_others(void)
{
	struct stat st;
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	CHECK(s >= 0 && fstat(s, &st) == 0);
	errno = 0;
	CHECK(privhelper_take_socket((uint32_t)getpid(), (uint32_t)st.st_ino) < 0 &&
	      errno == EPERM);
	close(s);
}

static void finishes(void)
{
	char err[256] = "";

	CHECK(privhelper_finish(err, sizeof(err)) == 1);
	CHECK(!privhelper_active());
	CHECK(privhelper_finish(err, sizeof(err)) == 0);
}

int main(void)
{
	if (geteuid() != 0) {
		printf("PASS privhelper/skipped (not root)\n");
		return 0;
	}
	setup();
	RUN("privhelper", opens_only_what_it_was_given);
	RUN("privhelper", writes_only_the_store);
	RUN("privhelper", reads_exe);
	RUN("privhelper", no_socket_of_others);
	RUN("privhelper", finishes);
	unlink(rd);
	unlink(other);
	unlink(logp);
	unlink(store);
	rmdir(dir);
	CHECK_EXIT();
}
