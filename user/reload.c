/* SIGHUP's reload of the rules and upstreams, without stalling the loop.
 *
 * The command line and the config file are read again on the loop (the
 * file through the privileged helper, quickly); the new upstreams' host
 * names are resolved on a thread of its own, because getaddrinfo blocks
 * and a slow or silent DNS server would otherwise hold every connection,
 * flow and DNS answer of the cgroup until it gave up.  The thread hands
 * the resolved options back through an eventfd; the loop then makes the
 * new policy set and swaps it in at once, or keeps the one in use.
 *
 * A SIGHUP during a reload reads the file again once that one ends.  A
 * stop during one abandons it: the thread frees what it holds when its
 * lookup returns, and nothing of it is applied. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <event2/event.h>

#include "cli.h"
#include "daemon.h"
#include "fastpath.h"
#include "log.h"
#include "policyset.h"
#include "reload.h"
#include "rules.h"
#include "upstream.h"

enum { JOB_RUNNING, JOB_DONE, JOB_ABANDONED };

struct reload_job {
	pthread_mutex_t mu;
	int state;                   /* JOB_*, under mu */
	int efd;                     /* the thread says "done" here */
	struct options n;            /* parsed on the loop, resolved on the thread */
	int failed;
	char err[600];
};

struct reload {
	struct daemon *d;
	struct reload_job *job;      /* the reload under way; NULL: none */
	struct event *ev;            /* job->efd readable */
	int again;                   /* a SIGHUP came during it */
};

static void job_free(struct reload_job *j)
{
	cli_options_free(&j->n);
	if (j->efd >= 0)
		close(j->efd);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

static void *resolve_all(void *arg)
{
	struct reload_job *j = arg;
	uint64_t one = 1;
	int abandoned;

	for (int i = 0; i < j->n.n_upstream && !j->failed; i++)
		if (upstream_resolve(&j->n.upstream[i], j->err, sizeof(j->err)) < 0)
			j->failed = 1;
	pthread_mutex_lock(&j->mu);
	abandoned = j->state == JOB_ABANDONED;
	j->state = JOB_DONE;
	/* One write to an eventfd cannot fail short (its counter cannot
	 * overflow from one): the result says nothing to act on. */
	if (!abandoned)
		(void)!write(j->efd, &one, sizeof(one));
	pthread_mutex_unlock(&j->mu);
	if (abandoned)
		job_free(j);
	return NULL;
}

/* why: NULL when said already. */
static void keep_old(struct daemon *d, const char *why)
{
	char ups[1024];

	policyset_describe(d->policy, ups, sizeof(ups));
	if (why)
		log_err("SIGHUP: %s", why);
	log_err("SIGHUP: the %d rules in use stay, with %s",
		rules_count(d->policy->rules), ups);
}

static void apply(struct daemon *d, struct options *n)
{
	struct policyset *ps = policyset_new(n), *old = d->policy;
	char ups[1024];

	if (!ps) {
		keep_old(d, "out of memory");
		return;
	}
	d->policy = ps;
	policyset_unref(old);
	fastpath_reload(d->fast);
	policyset_describe(ps, ups, sizeof(ups));
	log_info("SIGHUP: %d rules in use, %s (other options change on a restart only)",
		 rules_count(ps->rules), ups);
}

static int start(struct reload *r);

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	struct reload *r = arg;
	struct reload_job *j = r->job;
	uint64_t v;
	int done;

	(void)what;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return;              /* not yet: the event stays */
	/* The mutex orders the thread's writes before these reads. */
	pthread_mutex_lock(&j->mu);
	done = j->state == JOB_DONE;
	pthread_mutex_unlock(&j->mu);
	if (!done)
		return;
	event_free(r->ev);
	r->ev = NULL;
	r->job = NULL;
	if (j->failed)
		keep_old(r->d, j->err);
	else
		apply(r->d, &j->n);
	job_free(j);
	if (r->again) {
		r->again = 0;
		start(r);
	}
}

/* Reads the options again and sends the thread off.  0, or -1 when the
 * reload ended here (said why; the rules in use stay). */
static int start(struct reload *r)
{
	struct daemon *d = r->d;
	struct reload_job *j = calloc(1, sizeof(*j));
	char err[4096];
	sigset_t all, old;
	pthread_t t;
	int rc;

	if (!j) {
		keep_old(d, "out of memory");
		return -1;
	}
	if (cli_reparse(d->argc, d->argv, &j->n, err, sizeof(err)) < 0) {
		for (char *p = err, *nl; p; p = nl ? nl + 1 : NULL) {
			nl = strchr(p, '\n');
			if (nl)
				*nl = 0;
			log_err("SIGHUP: %s", p);
		}
		keep_old(d, NULL);
		free(j);
		return -1;
	}
	pthread_mutex_init(&j->mu, NULL);
	j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->ev = j->efd >= 0 ? event_new(d->base, j->efd, EV_READ | EV_PERSIST, on_done, r)
			    : NULL;
	if (!r->ev || event_add(r->ev, NULL) < 0) {
		if (r->ev)
			event_free(r->ev);
		r->ev = NULL;
		job_free(j);
		keep_old(d, "no event for the reload");
		return -1;
	}
	j->state = JOB_RUNNING;
	r->job = j;
	/* Signals stay with the loop's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t, NULL, resolve_all, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		event_free(r->ev);
		r->ev = NULL;
		r->job = NULL;
		job_free(j);
		keep_old(d, "cannot start a thread to resolve the upstreams");
		return -1;
	}
	pthread_detach(t);
	return 0;
}

void reload_request(struct daemon *d)
{
	struct reload *r = d->reload;

	if (!d->argv) {
		log_warn("SIGHUP: the command line was not kept (out of memory at start): "
			 "the rules in use stay");
		return;
	}
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r) {
			keep_old(d, "out of memory");
			return;
		}
		r->d = d;
		d->reload = r;
	}
	if (r->job) {
		r->again = 1;
		log_info("SIGHUP: a reload is under way (resolving the upstreams' "
			 "names); the file is read again when it ends");
		return;
	}
	start(r);
}

void reload_stop(struct daemon *d)
{
	struct reload *r = d->reload;
	struct reload_job *j;
	int running;

	if (!r)
		return;
	d->reload = NULL;
	j = r->job;
	if (r->ev)
		event_free(r->ev);
	if (j) {
		pthread_mutex_lock(&j->mu);
		running = j->state == JOB_RUNNING;
		if (running)
			j->state = JOB_ABANDONED;  /* the thread frees it */
		pthread_mutex_unlock(&j->mu);
		if (running)
			log_info("SIGHUP's reload, still resolving the upstreams' names, "
				 "is dropped");
		else
			job_free(j);
	}
	free(r);
}
