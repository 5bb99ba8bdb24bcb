/* The control socket: one request line in, one JSON document out.  Root
 * only, by the socket file's mode (0600, in a directory only we may
 * write) and by the peer's credentials; bounded in clients, request size
 * and time, so that a stuck client costs the daemon nothing. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "control.h"
#include "daemon.h"
#include "log.h"
#include "privhelper.h"
#include "report.h"

#define MAX_CLIENTS 16
#define CLIENT_TIMEOUT 5     /* seconds to send a request, and to take the reply */

struct control {
	struct daemon *d;
	struct evconnlistener *l;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct client *clients;
	int n_clients;
};

struct client {
	struct control *c;
	struct client *prev, *next;
	struct bufferevent *bev;
};

const char *control_dir(const char *given)
{
	const char *env = getenv(CONTROL_DIR_ENV);

	if (given)
		return given;
	return env && *env ? env : CONTROL_DIR_DEFAULT;
}

int control_path(char *buf, size_t len, const char *dir, pid_t pid)
{
	int n = snprintf(buf, len, "%s/%d.sock", dir, (int)pid);

	return n < 0 || (size_t)n >= len ||
	       (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path) ? -1 : 0;
}

int control_alive(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (rc == 0 || errno == EAGAIN || errno == EINPROGRESS)
		rc = 1;          /* a full backlog is a busy daemon, not a dead one */
	else if (errno == ECONNREFUSED || errno == ENOENT)
		rc = 0;
	else
		rc = -1;
	close(fd);
	return rc;
}

/* "<digits>.sock": its pid, else 0. */
static pid_t sock_pid(const char *name)
{
	char *end;
	long v;

	if (name[0] < '1' || name[0] > '9')
		return 0;
	v = strtol(name, &end, 10);
	if (strcmp(end, ".sock") != 0 || v <= 0 || v > 1 << 22)
		return 0;
	return (pid_t)v;
}

int control_sweep(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX];
	int n = 0;

	if (!dp)
		return 0;
	while ((e = readdir(dp))) {
		pid_t pid = sock_pid(e->d_name);

		if (!pid || control_path(path, sizeof(path), dir, pid) < 0)
			continue;
		/* Both: a pid may live in another PID namespace, or be reused
		 * by a process that is not a daemon; nobody listening on the
		 * socket of a dead pid is certain. */
		if (control_alive(path) != 0 || kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		if (unlink(path) == 0)
			n++;
	}
	closedir(dp);
	return n;
}

static void client_free(struct client *cl)
{
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		cl->c->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	cl->c->n_clients--;
	bufferevent_free(cl->bev);
	free(cl);
}

static void on_client_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	client_free(arg);       /* EOF, an error or a timeout: done */
}

static void on_written(struct bufferevent *bev, void *arg)
{
	(void)bev;
	client_free(arg);
}

static void reply_error(struct evbuffer *out, const char *why, const char *req)
{
	char esc[CONTROL_MAX_REQUEST * 6 + 1];

	log_escape_json(esc, sizeof(esc), req, strlen(req));
	evbuffer_add_printf(out, "{\"error\":\"%s '%s'\"}\n", why, esc);
}

static void on_request(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
	size_t n;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);

	if (!line) {
		if (evbuffer_get_length(in) < CONTROL_MAX_REQUEST)
			return;   /* more to come */
		evbuffer_add_printf(out, "{\"error\":\"request longer than %d bytes\"}\n",
				    CONTROL_MAX_REQUEST);
	} else if (strcmp(line, "status") == 0) {
		if (report_status(cl->c->d, out) < 0) {
			evbuffer_drain(out, evbuffer_get_length(out));
			evbuffer_add_printf(out, "{\"error\":\"out of memory\"}\n");
		}
	} else {
		reply_error(out, "unknown request", line);
	}
	free(line);
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, on_written, on_client_event, cl);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg)
{
	struct control *c = arg;
	struct timeval tv = { CLIENT_TIMEOUT, 0 };
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct client *cl;

	(void)l;
	(void)sa;
	(void)salen;
	/* The file's mode keeps others out; this keeps them out should
	 * someone loosen it. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
	    (cr.uid != 0 && cr.uid != geteuid())) {
		log_warn("control socket %s: a client of uid %d refused (root only)",
			 c->path, len == sizeof(cr) ? (int)cr.uid : -1);
		close(fd);
		return;
	}
	if (c->n_clients >= MAX_CLIENTS) {
		log_debug("control socket %s: %d clients already: one refused", c->path,
			  c->n_clients);
		close(fd);
		return;
	}
	cl = calloc(1, sizeof(*cl));
	if (cl)
		cl->bev = bufferevent_socket_new(c->d->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!cl || !cl->bev) {
		free(cl);
		close(fd);
		return;
	}
	cl->c = c;
	cl->next = c->clients;
	if (cl->next)
		cl->next->prev = cl;
	c->clients = cl;
	c->n_clients++;
	bufferevent_setcb(cl->bev, on_request, NULL, on_client_event, cl);
	bufferevent_set_timeouts(cl->bev, &tv, &tv);
	bufferevent_setwatermark(cl->bev, EV_READ, 0, CONTROL_MAX_REQUEST);
	bufferevent_enable(cl->bev, EV_READ);
}

/* Made if missing; else it must be ours and writable by us alone, or
 * anyone could swap our socket for theirs. */
static int check_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022)) {
		snprintf(err, errlen, "%s is not a directory of uid %d that only it "
			 "may write (mode %03o, uid %d); choose another with --control-dir",
			 dir, (int)geteuid(), (unsigned)(st.st_mode & 0777), (int)st.st_uid);
		return -1;
	}
	return 0;
}

struct control *control_new(struct daemon *d, const char *dir, char *err, size_t errlen)
{
	struct control *c = calloc(1, sizeof(*c));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, rc;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->d = d;
	if (check_dir(dir, err, errlen) < 0)
		goto fail;
	if (control_path(c->path, sizeof(c->path), dir, getpid()) < 0) {
		snprintf(err, errlen, "%s: too long a path for a unix socket", dir);
		goto fail;
	}
	control_sweep(dir);
	unlink(c->path);     /* a dead process's that had our pid */
	strcpy(sa.sun_path, c->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	old = umask(0177);   /* born 0600: no moment when others may connect */
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(fd, 16) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", c->path, strerror(errno));
		close(fd);
		if (rc == 0)
			unlink(c->path);
		goto fail;
	}
	privhelper_allow_remove(c->path);   /* at exit, after the drop */
	c->l = evconnlistener_new(d->base, on_accept, c, LEV_OPT_CLOSE_ON_FREE, 0, fd);
	if (!c->l) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		unlink(c->path);
		goto fail;
	}
	return c;
fail:
	free(c);
	return NULL;
}

void control_free(struct control *c)
{
	if (!c)
		return;
	while (c->clients)
		client_free(c->clients);
	evconnlistener_free(c->l);
	if (privhelper_unlink(c->path) < 0 && errno != ENOENT)
		log_warn("cannot remove the control socket %s: %s", c->path, strerror(errno));
	free(c);
}
