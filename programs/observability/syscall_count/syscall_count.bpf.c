/* syscall_count: counts system calls by number, for every process or for one process id.
 * Demonstrates a raw tracepoint (raw_tp/sys_enter, 4.17) and a per-CPU hash map. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* key 0: process id (tgid) to count; 0 counts every process */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target_pid SEC(".maps");

/* syscall number -> calls, one counter per CPU: no atomics and no cache-line bouncing */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

/* raw tracepoint arguments are the tracepoint's own: (struct pt_regs *regs, long id) */
SEC("raw_tp/sys_enter")
int BPF_PROG(count_sys_enter, struct pt_regs *regs, long id)
{
	__u32 key = 0, nr = id, *want;
	__u64 one = 1, *n;

	want = bpf_map_lookup_elem(&target_pid, &key);
	if (want && *want && *want != bpf_get_current_pid_tgid() >> 32)
		return 0;

	n = bpf_map_lookup_elem(&counts, &nr);
	if (n)
		*n += 1;
	else
		bpf_map_update_elem(&counts, &nr, &one, BPF_NOEXIST);
	return 0;
}
