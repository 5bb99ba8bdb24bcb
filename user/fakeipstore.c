/* The FakeIP store file (see fakeip.h): loading and atomic saving. */
#include "fakeip_int.h"

#include "log.h"
#include "privhelper.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_LINE_MAX 512
#define STORE_WARN_MAX 10

static void store_warn(const char *path, unsigned long line, size_t *nwarn,
		       const char *why)
{
	if (++*nwarn <= STORE_WARN_MAX)
		log_warn("fakeip: %s:%lu: %s; line skipped", path, line, why);
}

/* Reads one line into buf without its newline: 1, 0 at the end of the
 * file, -1 for a line that is too long or holds a NUL (consumed). */
static int read_line(FILE *f, char *buf, size_t cap)
{
	size_t n = 0;
	int c, bad = 0;

	while ((c = getc(f)) != EOF && c != '\n') {
		if (c == '\0' || n + 1 >= cap)
			bad = 1;
		else
			buf[n++] = (char)c;
	}
	if (c == EOF && n == 0 && !bad)
		return 0;
	buf[n] = '\0';
	return bad ? -1 : 1;
}

/* One "address name" line; returns NULL or why it was skipped. */
static const char *load_line(struct fakeip_pool *pool, char *line)
{
	char *save, *addr, *name;
	char buf[FAKEIP_NAME_MAX + 1];
	struct in_addr a4;
	struct in6_addr a6;
	uint32_t i;

	addr = strtok_r(line, " \t\r\n", &save);
	if (!addr || addr[0] == '#')
		return NULL;
	name = strtok_r(NULL, " \t\r\n", &save);
	if (!name || strtok_r(NULL, " \t\r\n", &save))
		return "want 'ADDRESS NAME'";
	if (inet_pton(AF_INET, addr, &a4) == 1)
		i = fakeip_index4(pool, &a4);
	else if (inet_pton(AF_INET6, addr, &a6) == 1)
		i = fakeip_index6(pool, &a6);
	else
		return "bad address";
	if (!i)
		return "address outside the FakeIP range";
	if (fakeip_normalize(name, buf) < 0)
		return "bad name";
	if (pool->e[i].name || fakeip_find(pool, buf))
		return "address or name already mapped";
	char *copy = strdup(buf);
	if (!copy)
		return "out of memory";
	fakeip_insert(pool, i, copy);
	return NULL;
}

/* The store's lines from f (closed here); path names it in messages. */
static int load_stream(struct fakeip_pool *pool, FILE *f, const char *path,
		       size_t *skipped, char *err, size_t errlen)
{
	char line[STORE_LINE_MAX];
	unsigned long lineno = 0;
	size_t nwarn = 0, before = pool->count;
	int dirty = pool->dirty;

	for (;;) {
		int r = read_line(f, line, sizeof(line));
		if (r == 0)
			break;
		lineno++;
		if (r < 0) {
			store_warn(path, lineno, &nwarn,
				   "line too long or not text");
			continue;
		}
		const char *why = load_line(pool, line);
		if (why)
			store_warn(path, lineno, &nwarn, why);
	}
	int rerr = ferror(f);
	fclose(f);
	if (rerr) {
		fakeip_seterr(err, errlen, "cannot read FakeIP store %s", path);
		return -1;
	}
	if (nwarn > STORE_WARN_MAX)
		log_warn("fakeip: %s: %zu lines skipped in all", path, nwarn);
	if (skipped)
		*skipped = nwarn;
	/* Loading alone changes nothing on disk; dropping lines does. */
	pool->dirty = dirty || nwarn > 0;
	return (int)(pool->count - before);
}

int fakeip_load_ex(struct fakeip_pool *pool, const char *path,
		   size_t *skipped, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");

	if (skipped)
		*skipped = 0;
	if (!f) {
		if (errno == ENOENT)
			return 0;
		fakeip_seterr(err, errlen, "cannot open FakeIP store %s: %s", path,
		       strerror(errno));
		return -1;
	}
	return load_stream(pool, f, path, skipped, err, errlen);
}

/* The same from memory, for the fuzzer: the parser sees exactly what a
 * file with these bytes would give it. */
int fakeip_load_mem(struct fakeip_pool *pool, const void *buf, size_t len,
		    size_t *skipped, char *err, size_t errlen)
{
	FILE *f = len ? fmemopen((void *)buf, len, "r") : NULL;

	if (skipped)
		*skipped = 0;
	if (!len)
		return 0; /* as an empty file */
	if (!f) {
		fakeip_seterr(err, errlen, "cannot read FakeIP store from "
			      "memory: %s", strerror(errno));
		return -1;
	}
	return load_stream(pool, f, "(memory)", skipped, err, errlen);
}

int fakeip_load(struct fakeip_pool *pool, const char *path, char *err,
		size_t errlen)
{
	return fakeip_load_ex(pool, path, NULL, err, errlen);
}

static int fsync_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!slash) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		if ((size_t)(slash - path) >= sizeof(dir))
			return -1;
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

int fakeip_save(const struct fakeip_pool *pool, const char *path, char *err,
		size_t errlen)
{
	char tmp[PATH_MAX];
	int fd;
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		fakeip_seterr(err, errlen, "FakeIP store path too long: %s", path);
		return -1;
	}
	/* A fresh file, never through a planted symlink; 0600: the store lists
	 * every name the apps looked up.  After the drop the helper makes it. */
	fd = privhelper_create_excl(tmp);
	if (fd < 0) {
		fakeip_seterr(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	f = fdopen(fd, "w");
	if (!f) {
		fakeip_seterr(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		privhelper_unlink(tmp);
		return -1;
	}
	fprintf(f, "# sproxy-bpf FakeIP store: ADDRESS NAME, least recently "
		"used first\n# range %s %s\n", pool->range4, pool->range6);
	for (uint32_t i = pool->tail; i; i = pool->e[i].prev) {
		struct in_addr a;
		char as[INET_ADDRSTRLEN];
		fakeip_addrs_of(pool, i, &a, NULL);
		inet_ntop(AF_INET, &a, as, sizeof(as));
		fprintf(f, "%s %s\n", as, pool->e[i].name);
	}
	if (fflush(f) != 0 || fsync(fd) != 0) {
		fakeip_seterr(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		fclose(f);
		privhelper_unlink(tmp);
		return -1;
	}
	if (fclose(f) != 0) {
		fakeip_seterr(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		privhelper_unlink(tmp);
		return -1;
	}
	if (privhelper_rename(tmp, path) != 0) {
		fakeip_seterr(err, errlen, "cannot rename %s to %s: %s", tmp, path,
		       strerror(errno));
		privhelper_unlink(tmp);
		return -1;
	}
	fsync_dir(path); /* best effort: the data itself is synced */
	return 0;
}

