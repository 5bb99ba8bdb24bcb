/* `sproxy-bpf top`: the daemon's connections, refreshed, processes sorted
 * by throughput over the last interval.  In a terminal it draws in place
 * with plain ANSI escapes (works over ssh, no curses) and ends on q or
 * Ctrl-C with the terminal as it was; elsewhere it prints one frame per
 * interval. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "cli.h"
#include "daemon.h"
#include "json.h"
#include "status.h"

static const char top_usage[] =
"Usage: sproxy-bpf top [-n COUNT] [--interval SEC] [--pid N | --socket PATH]\n"
"                      [--control-dir DIR]\n"
"\n"
"What the captured processes talk to, right now: a running daemon's\n"
"connections and UDP flows by process, sorted by bytes per second over the\n"
"last interval, refreshed.  In a terminal, q or Ctrl-C quits; when stdout is\n"
"not a terminal, one frame is printed per interval.\n"
"\n"
"  -n, --count COUNT     stop after COUNT frames (default: until q or Ctrl-C)\n"
"  -i, --interval SEC    seconds between frames (default 2)\n"
"      --pid N, --socket PATH, --control-dir DIR\n"
"                        which daemon, as for status\n"
"  -h, --help            this text\n";

/* One connection's bytes when last seen, by its id. */
struct seen {
	double id, up, down;
};

struct conn {
	const struct json *j;
	double up, down, rate;      /* rate: bytes/s both ways */
	double rup, rdown;
	int kernel;                 /* the kernel path's: no bytes while open */
};

struct proc {
	const struct json *j;
	struct conn *conns;
	size_t n;
	double up, down, rup, rdown;
};

struct top {
	int tty, keys;
	unsigned interval;
	struct seen *prev;
	size_t n_prev;
	double prev_at;             /* 0: no frame yet */
	struct termios saved;
	int term_changed;
	char *screen;               /* this frame, drawn at once */
	size_t len, cap;
	int rows, cols, line;
	int alt;                    /* on the alternate screen */
};

static volatile sig_atomic_t stop, resized, suspended;

static void on_signal(int sig)
{
	if (sig == SIGWINCH)
		resized = 1;
	else if (sig == SIGTSTP)
		suspended = 1;
	else
		stop = 1;
}

static double mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int by_id(const void *a, const void *b)
{
	const struct seen *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static const struct seen *seen_find(const struct top *t, double id)
{
	struct seen k = { id, 0, 0 };

	return t->n_prev ? bsearch(&k, t->prev, t->n_prev, sizeof(k), by_id) : NULL;
}

static int by_rate_conn(const void *a, const void *b)
{
	const struct conn *x = a, *y = b;

	if (x->rate != y->rate)
		return x->rate < y->rate ? 1 : -1;
	return x->up + x->down < y->up + y->down ? 1 : -1;
}

static int by_rate_proc(const void *a, const void *b)
{
	const struct proc *x = a, *y = b;
	double rx = x->rup + x->rdown, ry = y->rup + y->rdown;

	if (rx != ry)
		return rx < ry ? 1 : -1;
	if (x->up + x->down != y->up + y->down)
		return x->up + x->down < y->up + y->down ? 1 : -1;
	return json_num(x->j, "pid", 0) > json_num(y->j, "pid", 0) ? 1 : -1;
}

/* One line of the frame; in a terminal, cut to its width and counted
 * against its height. */
static void put(struct top *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct top *t, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	size_t n;

	if (t->tty && t->line >= t->rows - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n = strlen(line);
	if (t->tty && t->cols > 0 && n > (size_t)t->cols)
		n = (size_t)t->cols;
	if (t->len + n + 8 > t->cap) {
		size_t cap = (t->cap + n + 8) * 2;
		char *s = realloc(t->screen, cap);

		if (!s)
			return;
		t->screen = s;
		t->cap = cap;
	}
	memcpy(t->screen + t->len, line, n);
	t->len += n;
	/* Erase what the previous frame left to the right. */
	memcpy(t->screen + t->len, t->tty ? "\033[K\n" : "\n", t->tty ? 4 : 1);
	t->len += t->tty ? 4 : 1;
	t->line++;
}

/* Columns line up under the destination, as wide as the terminal allows
 * (at least 19: "[2001:db8::10]:443"); without a terminal, 40. */
static int dest_width(const struct top *t)
{
	int w = t->tty ? t->cols - 61 : 40;

	return w < 19 ? 19 : w > 100 ? 100 : w;
}

/* 1023B, 1.5K, 20.3M: a column of eight. */
static const char *compact(char *buf, size_t len, double v, const char *suffix)
{
	static const char units[] = "BKMGT";
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f%c%s" : "%.0f%c%s", v, units[u], suffix);
	return buf;
}

/* The destination in its column: cut, with a ~, when it does not fit a
 * terminal. */
static const char *dest_cell(const struct top *t, char *buf, size_t len,
			     const struct json *c)
{
	const char *host = json_str(c, "host", NULL), *dst = json_str(c, "dst", "?");
	const char *port = strrchr(dst, ':');
	char h[300];
	int w = dest_width(t);

	/* A name says more than the fake address behind it. */
	if (host && port)
		snprintf(buf, len, "%s%s", fmt_safe(h, sizeof(h), host), port);
	else
		snprintf(buf, len, "%s", dst);
	if (t->tty && strlen(buf) > (size_t)w && (size_t)w < len) {
		buf[w - 1] = '~';
		buf[w] = 0;
	}
	return buf;
}

static void fill_summary(struct top *t, const struct json *j)
{
	const struct json *fill = json_get(j, "fill"), *f;
	char buf[256], cg[300];
	size_t n = 0;
	static const char *const keys[][2] = {
		{ "tcp_records", "TCP records" }, { "udp_pool", "UDP pool" },
		{ "fakeip", "FakeIP" },
	};
	time_t now = time(NULL);
	struct tm tm;
	char clock[16];

	strftime(clock, sizeof(clock), "%H:%M:%S", localtime_r(&now, &tm));
	/* What a narrow terminal cuts goes last. */
	put(t, "sproxy-bpf top %s%s, pid %.0f capturing %s", clock, t->keys ? " (q quits)" : "",
	    json_num(j, "pid", 0), fmt_safe(cg, sizeof(cg), json_str(j, "cgroup", "?")));
	n += (size_t)snprintf(buf, sizeof(buf), "%.0f open", json_num(j, "conns", 0));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		f = json_get(fill, keys[i][0]);
		if (f && n < sizeof(buf))
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, " | %s %.0f/%.0f",
					      keys[i][1], json_num(f, "used", 0),
					      json_num(f, "size", 0));
	}
	put(t, "%s", buf);
	put(t, "%s", "");
	put(t, "%7s %-*s %5s %9s %9s %8s %8s %6s", "PID", dest_width(t) - 4, "COMM", "UID",
	    "SENT/s", "RECV/s", "SENT", "RECV", "CONNS");
}

/* Rates: bytes since the last frame over its interval; a connection not
 * seen before, its bytes over its age (at least the interval, which it
 * fits in, or a second on the first frame). */
static void rate(const struct top *t, struct conn *c, double dt)
{
	const struct seen *s = seen_find(t, json_num(c->j, "id", 0));
	double age = json_num(c->j, "age", 0), span;

	if (s && dt > 0) {
		c->rup = (c->up - s->up) / dt;
		c->rdown = (c->down - s->down) / dt;
	} else {
		span = t->prev_at ? (age > dt ? age : dt) : (age > 1 ? age : 1);
		c->rup = c->up / span;
		c->rdown = c->down / span;
	}
	if (c->rup < 0)
		c->rup = 0;
	if (c->rdown < 0)
		c->rdown = 0;
	c->rate = c->rup + c->rdown;
}

static void draw(struct top *t, const struct proc *p, size_t n)
{
	char b[4][32], comm[80], dest[400], age[32], uid[16];
	int w = dest_width(t);

	for (size_t i = 0; i < n; i++) {
		snprintf(uid, sizeof(uid), "%.0f", json_num(p[i].j, "uid", 0));
		put(t, "%7.0f %-*.*s %5s %9s %9s %8s %8s %6zu", json_num(p[i].j, "pid", 0),
		    w - 4, w - 4, fmt_safe(comm, sizeof(comm), json_str(p[i].j, "comm", "?")),
		    json_get(p[i].j, "uid") ? uid : "?",
		    compact(b[0], sizeof(b[0]), p[i].rup, "/s"),
		    compact(b[1], sizeof(b[1]), p[i].rdown, "/s"),
		    compact(b[2], sizeof(b[2]), p[i].up, ""),
		    compact(b[3], sizeof(b[3]), p[i].down, ""), p[i].n);
		for (size_t k = 0; k < p[i].n; k++) {
			const struct conn *c = &p[i].conns[k];

			put(t, "      %-3s %-*s %9s %9s %8s %8s %6s", json_str(c->j, "proto", "?"),
			    w, dest_cell(t, dest, sizeof(dest), c->j),
			    c->kernel ? "-" : compact(b[0], sizeof(b[0]), c->rup, "/s"),
			    c->kernel ? "-" : compact(b[1], sizeof(b[1]), c->rdown, "/s"),
			    c->kernel ? "-" : compact(b[2], sizeof(b[2]), c->up, ""),
			    c->kernel ? "-" : compact(b[3], sizeof(b[3]), c->down, ""),
			    fmt_age(age, sizeof(age), json_num(c->j, "age", 0)));
		}
	}
}

/* The frame for document j; remembers its bytes for the next one. */
static int frame(struct top *t, const struct json *j)
{
	const struct json *procs = json_get(j, "processes"), *pj, *cj;
	double now = mono(), dt = t->prev_at ? now - t->prev_at : 0;
	struct proc *p = NULL;
	struct seen *next = NULL;
	size_t np = 0, ns = 0, total = 0, i = 0;
	int rc = -1;

	for (pj = procs ? procs->child : NULL; pj; pj = pj->next, np++)
		for (cj = json_get(pj, "conns") ? json_get(pj, "conns")->child : NULL; cj;
		     cj = cj->next)
			total++;
	p = calloc(np ? np : 1, sizeof(*p));
	next = calloc(total ? total : 1, sizeof(*next));
	if (!p || !next)
		goto out;
	for (pj = procs ? procs->child : NULL; pj; pj = pj->next, i++) {
		const struct json *conns = json_get(pj, "conns");
		size_t k = 0;

		p[i].j = pj;
		for (cj = conns ? conns->child : NULL; cj; cj = cj->next)
			p[i].n++;
		p[i].conns = calloc(p[i].n ? p[i].n : 1, sizeof(*p[i].conns));
		if (!p[i].conns)
			goto out;
		for (cj = conns ? conns->child : NULL; cj; cj = cj->next, k++) {
			struct conn *c = &p[i].conns[k];

			c->j = cj;
			c->kernel = json_get(cj, "up") == NULL;
			c->up = json_num(cj, "up", 0);
			c->down = json_num(cj, "down", 0);
			rate(t, c, dt);
			p[i].up += c->up;
			p[i].down += c->down;
			p[i].rup += c->rup;
			p[i].rdown += c->rdown;
			next[ns++] = (struct seen){ json_num(cj, "id", 0), c->up, c->down };
		}
		qsort(p[i].conns, p[i].n, sizeof(*p[i].conns), by_rate_conn);
	}
	qsort(p, np, sizeof(*p), by_rate_proc);
	qsort(next, ns, sizeof(*next), by_id);
	t->len = 0;
	t->line = 0;
	fill_summary(t, j);
	draw(t, p, np);
	if (t->tty) {
		fputs("\033[H", stdout);
		fwrite(t->screen, 1, t->len, stdout);
		fputs("\033[J", stdout);
	} else {
		fwrite(t->screen, 1, t->len, stdout);
		fputs("\n", stdout);
	}
	fflush(stdout);
	free(t->prev);
	t->prev = next;
	t->n_prev = ns;
	next = NULL;
	t->prev_at = now;
	rc = 0;
out:
	for (i = 0; p && i < np; i++)
		free(p[i].conns);
	free(p);
	free(next);
	return rc;
}

static void term_size(struct top *t)
{
	struct winsize ws;

	t->rows = 24;
	t->cols = 80;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
		t->rows = ws.ws_row;
		t->cols = ws.ws_col;
	}
}

/* Keys without Enter, no echo; signals still work (Ctrl-C). */
static void term_enter(struct top *t, int alt)
{
	struct termios raw;

	if (t->keys && tcgetattr(STDIN_FILENO, &t->saved) == 0) {
		raw = t->saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0)
			t->term_changed = 1;
	}
	fputs(alt ? "\033[?1049h\033[?25l\033[H\033[J" : "\033[?25l", stdout);
	fflush(stdout);
}

static void term_leave(struct top *t, int alt)
{
	if (t->term_changed)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
	fputs(alt ? "\033[?1049l\033[?25h" : "\033[?25h", stdout);
	fflush(stdout);
}

/* Ctrl-Z: the shell gets its terminal back as it was while we are
 * stopped; on fg, ours again and a fresh frame. */
static void suspend(struct top *t)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL }, sa = { .sa_handler = on_signal };

	term_leave(t, t->alt);
	sigaction(SIGTSTP, &dfl, NULL);
	raise(SIGTSTP);             /* stopped here until SIGCONT */
	sigaction(SIGTSTP, &sa, NULL);
	term_enter(t, t->alt);
	term_size(t);
}

/* Waits until the next frame is due: 1 to draw it, 0 to quit. */
static int wait_next(struct top *t, double due)
{
	for (;;) {
		double left = due - mono();
		struct pollfd pfd = { STDIN_FILENO, POLLIN, 0 };
		char c;
		int n;

		if (stop)
			return 0;
		if (suspended) {
			suspended = 0;
			suspend(t);
			return 1;
		}
		if (resized) {
			resized = 0;
			term_size(t);
			return 1;
		}
		if (left <= 0)
			return 1;
		n = poll(&pfd, t->keys ? 1 : 0, (int)(left * 1000) + 1);
		if (n < 0 && errno != EINTR)
			return 0;
		if (n > 0) {
			if (read(STDIN_FILENO, &c, 1) != 1)
				t->keys = 0;        /* end of input: only signals now */
			else if (c == 'q' || c == 'Q' || c == 3)
				return 0;
			else if (c == ' ')
				return 1;
		}
	}
}

/* What -n and -i set. */
struct top_args {
	unsigned long count;
	unsigned interval;
};

static int top_option(int c, const char *arg, void *ctx)
{
	struct top_args *a = ctx;
	unsigned long v;

	if (cli_number(arg, 0, 1, c == 'n' ? 1000000 : 3600, &v) < 0) {
		fprintf(stderr, "sproxy-bpf: %s wants a decimal number from 1 to %s, "
			"not '%s'\n", c == 'n' ? "--count" : "--interval",
			c == 'n' ? "1000000" : "3600", arg);
		return EXIT_USAGE;
	}
	if (c == 'n')
		a->count = v;
	else
		a->interval = (unsigned)v;
	return 0;
}

int top_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "count", required_argument, 0, 'n' },
		{ "interval", required_argument, 0, 'i' },
		{ 0, 0, 0, 0 },
	};
	struct top_args args = { .interval = 2 };
	const struct ctl_cmd cmd = { "top", top_usage, "n:i:h", lo, top_option, &args };
	struct top t = { 0 };
	struct sigaction sa = { .sa_handler = on_signal };
	unsigned long count, frames = 0;
	char path[PATH_MAX];
	int rc, alt;

	rc = ctl_command(&cmd, argc, argv, path, sizeof(path));
	if (rc >= 0)
		return rc;
	rc = 0;
	count = args.count;
	t.interval = args.interval;
	t.tty = isatty(STDOUT_FILENO);
	t.keys = t.tty && isatty(STDIN_FILENO);
	/* The alternate screen gives the shell its screen back at the end;
	 * with a frame count, the last frame stays. */
	alt = t.alt = t.tty && !count;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGWINCH, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (t.tty) {
		sigaction(SIGTSTP, &sa, NULL);
		term_size(&t);
		term_enter(&t, alt);
	}
	for (;;) {
		double due = mono() + t.interval;
		struct json *j = ctl_status(path, NULL);

		if (!j || frame(&t, j) < 0 || ferror(stdout)) {
			json_free(j);
			rc = 1;
			if (t.tty) {
				/* The message went to the screen we leave: again. */
				term_leave(&t, alt);
				t.tty = 0;
				json_free(ctl_status(path, NULL));
			}
			break;
		}
		json_free(j);
		if (count && ++frames >= count)
			break;
		if (!wait_next(&t, due))
			break;
	}
	if (t.tty)
		term_leave(&t, alt);
	free(t.prev);
	free(t.screen);
	return rc;
}
