/* bpf_loop_demo: on getppid() from one chosen process, sums 0..n-1 with a callback run n times.
 * Demonstrates bpf_loop (5.17): a loop bound known only at run time, with early exit, verified once. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpf_loop_demo.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct loop_config);
} loop_cfg SEC(".maps");

/* tgid -> result of its last getppid() */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct loop_result);
} results SEC(".maps");

struct sum_state {
	__u64 sum;
	__u32 stop_at;
};

/* called by bpf_loop with index 0, 1, ...; returning 1 stops the loop */
static int add_index(__u32 index, void *data)
{
	struct sum_state *s = data;

	s->sum += index;
	return s->stop_at && index + 1 >= s->stop_at;
}

SEC("tp/syscalls/sys_enter_getppid")
int sum_with_bpf_loop(void *ctx)
{
	__u32 key = 0, tgid = bpf_get_current_pid_tgid() >> 32;
	struct loop_config *cfg;
	struct loop_result r;
	struct sum_state s;

	cfg = bpf_map_lookup_elem(&loop_cfg, &key);
	if (!cfg || !cfg->pid || cfg->pid != tgid)
		return 0;

	s.sum = 0;
	s.stop_at = cfg->stop_at;
	/*
	 * Read the result as a 32-bit int. Since 1ade23711971 ("bpf: Inline calls to bpf_loop
	 * when callback is known", 5.19) the verifier inlines this call and sets -E2BIG with a
	 * 32-bit move, so the 64-bit value is 0xfffffff9, not -7; the helper itself (5.17,
	 * 5.18, or when not inlined) returns a sign-extended -7. Counts fit: at most 1 << 23.
	 */
	r.ret = (int)bpf_loop(cfg->nr_loops, add_index, &s, 0);
	r.sum = s.sum;
	bpf_map_update_elem(&results, &tgid, &r, BPF_ANY);
	return 0;
}
