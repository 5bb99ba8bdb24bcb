/* minhooks CGROUP OBJ: attaches the programs of minhooks.bpf.o (OBJ) to
 * CGROUP through bpf_links and drains the ring buffer (reading each
 * record, writing nothing) until SIGTERM or SIGINT; then prints how many
 * reports it read.  Prints "ready" once attached.  The bench's anchor for
 * the kernel fast path: what the hooks and one report per connection
 * cost, apart from anything the daemon decides or logs. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>

static volatile sig_atomic_t stop;
static unsigned long long reports, bytes;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int on_report(void *ctx, void *data, size_t len)
{
	const unsigned long long *r = data;

	(void)ctx;
	if (len >= 24)
		bytes += r[1] + r[2];
	reports++;
	return 0;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_link *links[4];
	struct ring_buffer *rb;
	int cg, n = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: minhooks CGROUP OBJ\n");
		return 2;
	}
	cg = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (cg < 0) {
		fprintf(stderr, "minhooks: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	obj = bpf_object__open_file(argv[2], NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "minhooks: cannot load %s\n", argv[2]);
		return 1;
	}
	bpf_object__for_each_program(prog, obj) {
		links[n] = bpf_program__attach_cgroup(prog, cg);
		if (!links[n]) {
			fprintf(stderr, "minhooks: cannot attach %s: %s\n",
				bpf_program__name(prog), strerror(errno));
			while (n--)
				bpf_link__destroy(links[n]);
			return 1;
		}
		n++;
	}
	rb = ring_buffer__new(bpf_map__fd(bpf_object__find_map_by_name(obj, "reports")),
			      on_report, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "minhooks: no ring buffer\n");
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("ready\n");
	fflush(stdout);
	/* Woken when a lot is waiting, else once a second, as the daemon. */
	while (!stop)
		if (ring_buffer__poll(rb, 1000) == 0)
			ring_buffer__consume(rb);
	ring_buffer__consume(rb);
	while (n--)
		bpf_link__destroy(links[n]);
	ring_buffer__free(rb);
	bpf_object__close(obj);
	printf("reports %llu bytes %llu\n", reports, bytes);
	return 0;
}
