/* A user's object with three programs whose kernel requirements differ:
 * ring buffer (5.8), bpf_loop (5.17) and XDP (4.8). Used by the real-kernel tests. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("tp/syscalls/sys_enter_getpid")
int ringbuf_prog(void *ctx)
{
	__u32 *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (e) {
		*e = bpf_get_current_pid_tgid() >> 32;
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}

static long count_cb(__u32 i, void *ctx)
{
	(*(__u64 *)ctx)++;
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int loop_prog(void *ctx)
{
	__u64 n = 0;

	bpf_loop(8, count_cb, &n, 0);
	return n == 8 ? 0 : 1;
}

SEC("xdp")
int xdp_prog(struct xdp_md *ctx)
{
	return XDP_PASS;
}
