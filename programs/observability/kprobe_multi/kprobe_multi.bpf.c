/* kprobe_multi: counts one process's calls of every kernel function matching a glob, per function address.
 * Demonstrates a multi-kprobe link (5.18): one program, one link, many functions, told apart by bpf_get_func_ip. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* key 0: process id (tgid) to count; 0 counts nobody */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target_pid SEC(".maps");

/* function entry address -> calls */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u64);
} calls SEC(".maps");

/*
 * libbpf expands the glob against the kernel's symbols and attaches them all through one
 * BPF_LINK_CREATE (attach type BPF_TRACE_KPROBE_MULTI): here the entry points of
 * getppid(2) and getpgid(2), whose names carry the architecture (the syscall wrappers
 * since 4.17 on x86-64 and 5.0 on arm64). The kernel needs CONFIG_FPROBE for this link
 * type.
 */
#if defined(__TARGET_ARCH_arm64)
#define SYSCALLS "__arm64_sys_getp?id"
#else
#define SYSCALLS "__x64_sys_getp?id"
#endif

SEC("kprobe.multi/" SYSCALLS)
int count_calls(struct pt_regs *ctx)
{
	__u32 key = 0, *want = bpf_map_lookup_elem(&target_pid, &key);
	__u64 ip, one = 1, *n;

	if (!want || !*want || *want != bpf_get_current_pid_tgid() >> 32)
		return 0;
	ip = bpf_get_func_ip(ctx); /* which of the attached functions this call is in */
	n = bpf_map_lookup_elem(&calls, &ip);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&calls, &ip, &one, BPF_NOEXIST);
	return 0;
}
