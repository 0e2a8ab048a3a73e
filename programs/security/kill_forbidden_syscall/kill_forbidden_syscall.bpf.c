/* kill_forbidden_syscall: SIGKILLs a watched process the moment it enters one forbidden system call.
 * Demonstrates bpf_send_signal (5.3) from a raw tracepoint (raw_tp/sys_enter). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define SIGKILL 9

/* key 0: the forbidden system call's number in this architecture's table */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} forbidden_nr SEC(".maps");

/* watched processes (tgid) -> SIGKILLs sent to each; other processes are left alone */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} watched SEC(".maps");

SEC("raw_tp/sys_enter")
int BPF_PROG(kill_on_forbidden, struct pt_regs *regs, long id)
{
	__u32 key = 0, tgid = bpf_get_current_pid_tgid() >> 32, *nr;
	__u64 *kills;

	kills = bpf_map_lookup_elem(&watched, &tgid);
	if (!kills)
		return 0;
	nr = bpf_map_lookup_elem(&forbidden_nr, &key);
	if (!nr || *nr != id)
		return 0;
	/* signals the whole process; it dies on the way back to user space, after the
	 * call itself has run: pair with an LSM hook where the call must not happen */
	if (bpf_send_signal(SIGKILL) == 0)
		__sync_fetch_and_add(kills, 1);
	return 0;
}
