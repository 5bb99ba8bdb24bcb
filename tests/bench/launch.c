// Starts a daemon and times it from exec to its "ready" line.
//
//   launch [-n NETNS_PATH] [-r READY] [-t TIMEOUT_S] -o LOGFILE -- CMD ARGS...
//
// Forks; the child enters the network namespace (setns) and execs CMD with
// stdout and stderr on a pipe. The parent copies that pipe to LOGFILE and
// prints on its stdout, one line each:
//   "ready PID MICROSECONDS"   when a line containing READY (default "ready")
//                              arrives; it then keeps copying until EOF
//   "timeout PID"              no ready line in time: the child gets SIGTERM,
//                              then SIGKILL after 3 s
//   "exit PID STATUS"          the child ended (STATUS: exit code, or 128+sig)
// Exit status: 0 if the child was ready and later exited 0, 1 otherwise.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *netns = NULL, *ready = "ready", *logpath = NULL;
	double timeout = 30;
	int opt;
	while ((opt = getopt(argc, argv, "+n:r:t:o:")) != -1) {
		switch (opt) {
		case 'n': netns = optarg; break;
		case 'r': ready = optarg; break;
		case 't': timeout = atof(optarg); break;
		case 'o': logpath = optarg; break;
		default: goto usage;
		}
	}
	if (!logpath || optind >= argc)
		goto usage;
	FILE *log = fopen(logpath, "a");
	if (!log) {
		perror(logpath);
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	int nsfd = -1;
	if (netns && (nsfd = open(netns, O_RDONLY | O_CLOEXEC)) < 0) {
		perror(netns);
		return 1;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return 1;
	double t0 = now();
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0) {
			perror("setns");
			_exit(126);
		}
		dup2(p[1], 1);
		dup2(p[1], 2);
		execvp(argv[optind], argv + optind);
		perror(argv[optind]);
		_exit(127);
	}
	close(p[1]);
	char line[4096];
	size_t ll = 0;
	int is_ready = 0, timed_out = 0;
	for (;;) {
		int wait_ms = -1;
		if (!is_ready && !timed_out) {
			double left = timeout - (now() - t0);
			if (left <= 0) {
				printf("timeout %d\n", pid);
				kill(pid, SIGTERM);
				timed_out = 1;
				continue;
			}
			wait_ms = (int)(left * 1000) + 1;
		}
		if (timed_out)
			wait_ms = 3000;
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		int r = poll(&pf, 1, wait_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			if (timed_out) {
				kill(pid, SIGKILL);
				break;
			}
			continue;
		}
		char buf[4096];
		ssize_t n = read(p[0], buf, sizeof buf);
		if (n <= 0)
			break;
		fwrite(buf, 1, n, log);
		fflush(log);
		if (is_ready || timed_out)
			continue;
		for (ssize_t i = 0; i < n && !is_ready; i++) {
			if (ll < sizeof line - 1)
				line[ll++] = buf[i];
			if (buf[i] == '\n') {
				line[ll] = 0;
				if (strstr(line, ready)) {
					is_ready = 1;
					printf("ready %d %.0f\n", pid, (now() - t0) * 1e6);
				}
				ll = 0;
			}
		}
	}
	int st = 0;
	waitpid(pid, &st, 0);
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	printf("exit %d %d\n", pid, code);
	return is_ready && code == 0 ? 0 : 1;
usage:
	fprintf(stderr, "usage: launch [-n NETNS] [-r READY] [-t TIMEOUT] -o LOG -- CMD...\n");
	return 2;
}
