/* Event loops beside the main one for bulk relays (see relayloop.h).
 *
 * A relay that turned bulk gets a `struct relay_away`: where it is counted
 * and, while it is handed between loops, its place in an inbox.  One mutex
 * guards every inbox and every away state; an eventfd per loop wakes it.
 * The states:
 *   HOME    on the main loop (placed there, or back: its end delivered)
 *   ADOPT   in a worker's inbox, its events freed, not yet taken up
 *   ACTIVE  on a worker, its events there
 *   DONE    ended on a worker, in the main loop's inbox
 * Only the main loop frees a relay; a worker never waits for it. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <event2/event.h>

#include "log.h"
#include "relay.h"
#include "relayloop.h"

#define MAX_LOOPS 64

enum away_state { AW_HOME, AW_ADOPT, AW_ACTIVE, AW_DONE };

struct msg {
	struct msg *next;
	struct relay *r;
	int recall;              /* else: adopt (worker) or done (main) */
	int answered;            /* recall: the worker has let go */
};

struct relay_loop;

struct relay_away {
	struct relay_loop *loop;     /* where it is counted */
	enum away_state state;
	struct msg m;                /* adopt, then done */
	char err[128];               /* done: why it ended; "" cleanly */
};

struct relay_loop {
	struct relay_loops *set;
	int index;                   /* 0: the main loop */
	struct event_base *base;
	int efd;
	struct event *wake;
	struct msg *head, **tail;    /* the inbox */
	pthread_t thread;
	int started, quit;
	unsigned long now, taken;    /* main thread only */
};

struct relay_loops {
	pthread_mutex_t mu;
	pthread_cond_t answered;
	int n;
	struct relay_loop loop[];
};

static void push(struct relay_loop *l, struct msg *m)
{
	uint64_t one = 1;

	m->next = NULL;
	*l->tail = m;
	l->tail = &m->next;
	if (write(l->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("relay loop %d: eventfd: %s", l->index, strerror(errno));
}

/* Takes m out of l's inbox if it is there (the lock held). */
static void unlink_msg(struct relay_loop *l, struct msg *m)
{
	for (struct msg **p = &l->head; *p; p = &(*p)->next)
		if (*p == m) {
			*p = m->next;
			if (l->tail == &m->next)
				l->tail = p;
			return;
		}
}

static struct msg *take_all(struct relay_loop *l)
{
	struct msg *m;
	uint64_t v;

	if (read(l->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("relay loop %d: eventfd: %s", l->index, strerror(errno));
	pthread_mutex_lock(&l->set->mu);
	m = l->head;
	l->head = NULL;
	l->tail = &l->head;
	/* Taken up from here on: a recall must now ask this thread. */
	for (struct msg *i = m; i; i = i->next)
		if (!i->recall && i->r->away->state == AW_ADOPT)
			i->r->away->state = AW_ACTIVE;
	pthread_mutex_unlock(&l->set->mu);
	return m;
}

/* A worker's inbox: relays to take up, relays the main loop wants back. */
static void on_worker_wake(evutil_socket_t fd, short what, void *arg)
{
	struct relay_loop *l = arg;
	struct msg *m = take_all(l), *next;

	(void)fd;
	(void)what;
	for (; m; m = next) {
		next = m->next;
		if (!m->recall) {
			relay_resume(m->r, l->base);
			continue;
		}
		pthread_mutex_lock(&l->set->mu);
		if (m->r->away->state == AW_ACTIVE) {
			relay_suspend(m->r);
			m->r->away->state = AW_HOME;
		}
		m->answered = 1;
		pthread_cond_broadcast(&l->set->answered);
		pthread_mutex_unlock(&l->set->mu);
	}
	pthread_mutex_lock(&l->set->mu);
	if (l->quit)
		event_base_loopbreak(l->base);
	pthread_mutex_unlock(&l->set->mu);
}

/* The main loop's inbox: relays that ended on a worker. */
static void on_main_wake(evutil_socket_t fd, short what, void *arg)
{
	struct relay_loop *l = arg;
	struct msg *m = take_all(l), *next;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&l->set->mu);
	for (struct msg *i = m; i; i = i->next)
		i->r->away->state = AW_HOME;
	pthread_mutex_unlock(&l->set->mu);
	/* Each delivery frees its relay: nothing of m is read after. */
	for (; m; m = next) {
		struct relay *r = m->r;

		next = m->next;
		relay_deliver(r, r->away->err[0] ? r->away->err : NULL);
	}
}

static void *worker(void *arg)
{
	struct relay_loop *l = arg;

	event_base_dispatch(l->base);
	return NULL;
}

static int loop_init(struct relay_loops *s, int i, struct event_base *base)
{
	struct relay_loop *l = &s->loop[i];

	l->set = s;
	l->index = i;
	l->tail = &l->head;
	l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->efd < 0)
		return -1;
	l->base = base ? base : event_base_new();
	if (!l->base)
		return -1;
	l->wake = event_new(l->base, l->efd, EV_READ | EV_PERSIST,
			    i ? on_worker_wake : on_main_wake, l);
	if (!l->wake || event_add(l->wake, NULL) < 0)
		return -1;
	return 0;
}

/* Half the CPUs: the bytes a relay moves cost the applications and the
 * kernel's TCP stack as much CPU again.  On two cores shared with the
 * client and the server, a second loop lost a tenth of the throughput of
 * eight streams against one (README, Performance). */
int relay_loops_default(void)
{
	cpu_set_t set;
	int n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	else
		n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	n /= 2;
	return n < 1 ? 1 : n > MAX_LOOPS ? MAX_LOOPS : n;
}

struct relay_loops *relay_loops_new(struct event_base *base, int n, char *err, size_t errlen)
{
	struct relay_loops *s;
	sigset_t all, old;
	int rc;

	err[0] = 0;
	if (n < 2)
		return NULL;
	if (n > MAX_LOOPS)
		n = MAX_LOOPS;
	s = calloc(1, sizeof(*s) + (size_t)n * sizeof(s->loop[0]));
	if (!s) {
		snprintf(err, errlen, "relay loops: out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->answered, NULL);
	s->n = n;
	for (int i = 0; i < n; i++)
		s->loop[i].efd = -1;
	for (int i = 0; i < n; i++)
		if (loop_init(s, i, i ? NULL : base) < 0) {
			snprintf(err, errlen, "relay loops: %s", strerror(errno ? errno : ENOMEM));
			relay_loops_free(s);
			return NULL;
		}
	/* Signals stay with the main thread, which has their handlers. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int i = 1; i < n; i++) {
		rc = pthread_create(&s->loop[i].thread, NULL, worker, &s->loop[i]);
		if (rc) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			snprintf(err, errlen, "relay loops: cannot start a thread: %s", strerror(rc));
			relay_loops_free(s);
			return NULL;
		}
		s->loop[i].started = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return s;
}

void relay_loops_free(struct relay_loops *s)
{
	if (!s)
		return;
	for (int i = 1; i < s->n; i++) {
		struct relay_loop *l = &s->loop[i];
		uint64_t one = 1;

		if (!l->started)
			continue;
		pthread_mutex_lock(&s->mu);
		l->quit = 1;
		pthread_mutex_unlock(&s->mu);
		if (write(l->efd, &one, sizeof(one)) < 0)
			log_warn("relay loop %d: eventfd: %s", i, strerror(errno));
		pthread_join(l->thread, NULL);
		l->started = 0;
	}
	for (int i = 0; i < s->n; i++) {
		struct relay_loop *l = &s->loop[i];

		if (l->wake)
			event_free(l->wake);
		if (i && l->base)
			event_base_free(l->base);
		if (l->efd >= 0)
			close(l->efd);
	}
	pthread_cond_destroy(&s->answered);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int relay_loops_count(const struct relay_loops *s)
{
	return s ? s->n : 1;
}

void relay_loops_stats(const struct relay_loops *s, int i, unsigned long *now,
		       unsigned long *taken)
{
	*now = s ? s->loop[i].now : 0;
	*taken = s ? s->loop[i].taken : 0;
}

int relay_loops_place(struct relay_loops *s, struct relay *r)
{
	struct relay_loop *best = &s->loop[0];

	if (!(r->away = calloc(1, sizeof(*r->away))))
		return -1;
	/* The main loop wins ties: staying costs nothing. */
	for (int i = 1; i < s->n; i++)
		if (s->loop[i].now < best->now)
			best = &s->loop[i];
	r->away->loop = best;
	r->away->m.r = r;
	best->now++;
	best->taken++;
	return best->index != 0;
}

void relay_loops_move(struct relay *r)
{
	struct relay_away *a = r->away;
	struct relay_loops *s = a->loop->set;

	pthread_mutex_lock(&s->mu);
	a->state = AW_ADOPT;
	push(a->loop, &a->m);
	pthread_mutex_unlock(&s->mu);
}

int relay_loops_away(const struct relay *r)
{
	return r->away && r->away->loop->index != 0;
}

void relay_loops_finished(struct relay *r, const char *err)
{
	struct relay_away *a = r->away;
	struct relay_loops *s = a->loop->set;

	snprintf(a->err, sizeof(a->err), "%s", err ? err : "");
	pthread_mutex_lock(&s->mu);
	a->state = AW_DONE;
	push(&s->loop[0], &a->m);
	pthread_mutex_unlock(&s->mu);
}

void relay_loops_release(struct relay *r)
{
	struct relay_away *a = r->away;
	struct relay_loops *s = a->loop->set;
	struct msg recall = { .r = r, .recall = 1 };

	pthread_mutex_lock(&s->mu);
	if (a->state == AW_ADOPT) {
		unlink_msg(a->loop, &a->m);
		a->state = AW_HOME;
	} else if (a->state == AW_ACTIVE && !a->loop->started) {
		relay_suspend(r);        /* its thread has ended */
		a->state = AW_HOME;
	} else if (a->state == AW_ACTIVE) {
		push(a->loop, &recall);
		while (!recall.answered)
			pthread_cond_wait(&s->answered, &s->mu);
	}
	if (a->state == AW_DONE) {       /* ended there before it heard us */
		unlink_msg(&s->loop[0], &a->m);
		a->state = AW_HOME;
	}
	pthread_mutex_unlock(&s->mu);
	a->loop->now--;
	free(a);
	r->away = NULL;
}
