/* open_iter_demo: on getppid() from one chosen process, sums 0..n-1 in a plain C while loop.
 * Demonstrates open-coded iterators (bpf_iter_num_new/next/destroy kfuncs, 6.4): loops inline, no callback. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "open_iter_demo.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * libbpf 1.1's headers have neither bpf_for() nor the iterator kfunc declarations, so
 * they are declared here. The state type gets its own name because vmlinux.h has
 * struct bpf_iter_num only from 6.4 on; the verifier types the argument from the
 * kernel's own BTF and libbpf does not compare struct names when it matches the
 * prototypes, so any 8-byte, 8-aligned opaque struct is accepted.
 */
struct num_iter_state {
	__u64 opaque[1];
} __attribute__((aligned(8)));

extern int bpf_iter_num_new(struct num_iter_state *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct num_iter_state *it) __ksym;
extern void bpf_iter_num_destroy(struct num_iter_state *it) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct iter_config);
} iter_cfg SEC(".maps");

/* tgid -> result of its last getppid() */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct iter_result);
} results SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int sum_with_iterator(void *ctx)
{
	__u32 key = 0, tgid = bpf_get_current_pid_tgid() >> 32;
	struct num_iter_state it;
	struct iter_config *cfg;
	struct iter_result r = {};
	__u32 stop_at;
	int *v, err;

	cfg = bpf_map_lookup_elem(&iter_cfg, &key);
	if (!cfg || !cfg->pid || cfg->pid != tgid)
		return 0;
	stop_at = cfg->stop_at;

	/* the iterator must be destroyed even when new() fails: the verifier insists */
	err = bpf_iter_num_new(&it, 0, cfg->end);
	if (err) {
		r.ret = err;
	} else {
		while ((v = bpf_iter_num_next(&it))) {
			r.sum += *v;
			r.ret++;
			if (stop_at && r.ret >= stop_at)
				break;
		}
	}
	bpf_iter_num_destroy(&it);

	bpf_map_update_elem(&results, &tgid, &r, BPF_ANY);
	return 0;
}
