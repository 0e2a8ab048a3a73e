/* syscall_latency_hist: a log2 histogram of how long one process's clock_nanosleep(2) calls take, in ns.
 * Demonstrates in-kernel aggregation: entry/exit tracepoints paired per thread, only the histogram reaches user space. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "syscall_latency_hist.h"

char LICENSE[] SEC("license") = "GPL";

/* key 0: process id (tgid) to measure; 0 measures nobody */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target_pid SEC(".maps");

/* thread id -> ktime at syscall entry */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} started SEC(".maps");

/* slot -> calls whose duration has that floor(log2(ns)) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HIST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} hist SEC(".maps");

static __always_inline bool is_target(__u64 id)
{
	__u32 key = 0, *want = bpf_map_lookup_elem(&target_pid, &key);

	return want && *want && *want == id >> 32;
}

/* floor(log2(v)) for v > 0, by halving the search range: six steps, no loop */
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) r += 1;
	return r;
}

/* glibc implements nanosleep(3), usleep(3) and sleep(3) with clock_nanosleep, as does Python's time.sleep */
SEC("tp/syscalls/sys_enter_clock_nanosleep")
int sleep_enter(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), now;
	__u32 tid = (__u32)id;

	if (!is_target(id))
		return 0;
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&started, &tid, &now, BPF_ANY);
	return 0;
}

SEC("tp/syscalls/sys_exit_clock_nanosleep")
int sleep_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), *t0, *count, delta;
	__u32 tid = (__u32)id, slot;

	t0 = bpf_map_lookup_elem(&started, &tid);
	if (!t0)
		return 0; /* not measured, or the entry happened before attach */
	delta = bpf_ktime_get_ns() - *t0;
	bpf_map_delete_elem(&started, &tid);

	slot = delta ? log2_u64(delta) : 0;
	if (slot >= HIST_SLOTS)
		slot = HIST_SLOTS - 1;
	count = bpf_map_lookup_elem(&hist, &slot);
	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}
