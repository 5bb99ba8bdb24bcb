// SPDX-License-Identifier: GPL-2.0
/* minhooks: the least a per-connection report through cgroup BPF costs,
 * as the bench's anchor for the kernel fast path.  A connect4 hook that
 * lets every connect go, a sockops program that asks for state callbacks
 * at connect and sends one record to a ring buffer when the connection
 * closes: no maps, no decision, no log.  tests/bench/minhooks.c loads it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TCP_CLOSE_ 7

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} reports SEC(".maps");

struct report {
	__u64 cookie;
	__u64 up, down;
	__u32 pid;
	__u32 pad;
};

SEC("cgroup/connect4")
int minhooks_connect4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("sockops")
int minhooks_sockops(struct bpf_sock_ops *skops)
{
	struct report *r;

	if (skops->op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
					  BPF_SOCK_OPS_STATE_CB_FLAG);
		return 1;
	}
	if (skops->op != BPF_SOCK_OPS_STATE_CB || skops->args[1] != TCP_CLOSE_)
		return 1;
	r = bpf_ringbuf_reserve(&reports, sizeof(*r), 0);
	if (!r)
		return 1;
	r->cookie = bpf_get_socket_cookie(skops);
	r->up = skops->bytes_acked;
	r->down = skops->bytes_received;
	r->pid = bpf_get_current_pid_tgid() >> 32;
	r->pad = 0;
	/* As the daemon does: wake the reader only when a lot is waiting. */
	bpf_ringbuf_submit(r, bpf_ringbuf_query(&reports, BPF_RB_AVAIL_DATA) >= 65536
			      ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
