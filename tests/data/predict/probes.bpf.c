/* Feature probes for `predict`: one program per thing the prediction models, each
 * needing one fact of the kernel. Predicted on fake kernels (tests/test_predict.py) and
 * held against real ones (tests/vm/test_real_kernels.py). No vmlinux.h: local CO-RE
 * types with preserve_access_index, as libbpf-tools' compat headers do. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

/* inet_sock.freebind: a bit field until 6.6 moved it into inet_flags */
struct inet_sock___probe {
	__u8 freebind: 1;
} __attribute__((preserve_access_index));

enum bpf_func_id___probe {
	BPF_FUNC_get_func_ip___probe = 173,
};

static long step(__u64 i, void *ctx)
{
	return 0;
}

/* CO-RE: a field some kernels do not have, read unguarded */
SEC("kprobe/inet_bind")
int core_field(struct pt_regs *ctx)
{
	struct inet_sock___probe *sk = (void *)bpf_get_current_task();

	return BPF_CORE_READ_BITFIELD_PROBED(sk, freebind);
}

/* the same field, guarded: where it is missing the read is dead code */
SEC("kprobe/inet_bind")
int core_guarded(struct pt_regs *ctx)
{
	struct inet_sock___probe *sk = (void *)bpf_get_current_task();

	if (bpf_core_field_exists(sk->freebind))
		return BPF_CORE_READ_BITFIELD_PROBED(sk, freebind);
	return 0;
}

/* a helper (bpf_loop, 5.17), called unguarded */
SEC("tp/syscalls/sys_enter_getpid")
int helper_loop(void *ctx)
{
	bpf_loop(4, step, 0, 0);
	return 0;
}

/* a helper (bpf_get_func_ip, 5.15) behind an enum-value check: the call is dead code
 * where the kernel lacks it (no callback here: the verifier reads every instruction of a
 * program before it walks any, so a callback's address counts even in dead code) */
SEC("kprobe/inet_bind")
int helper_guarded(struct pt_regs *ctx)
{
	if (bpf_core_enum_value_exists(enum bpf_func_id___probe, BPF_FUNC_get_func_ip___probe))
		return bpf_get_func_ip(ctx) != 0;
	return 0;
}

/* libbpf calls bpf_probe_read where bpf_probe_read_kernel (5.5) is missing */
SEC("tp/syscalls/sys_enter_getpid")
int probe_read_fallback(void *ctx)
{
	long v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), ctx);
	return v == 1;
}

SEC("socket")
int socket_filter(struct __sk_buff *skb)
{
	return 0;
}

/* hooks that are in no kernel */
SEC("fentry/ebpf_harness_no_such_function")
int fentry_missing(void *ctx)
{
	return 0;
}

SEC("kprobe/ebpf_harness_no_such_function")
int kprobe_missing(struct pt_regs *ctx)
{
	return 0;
}

SEC("tp/sched/ebpf_harness_no_such_event")
int tracepoint_missing(void *ctx)
{
	return 0;
}
