/* Maps left for the loader to size, as libbpf-tools leave them: a stack-trace map with
 * no value size, a hash map with no max_entries. The harness gives them the sizes a
 * loader would (and says so); without that, map creation fails with EINVAL. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(__u32));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32);
} counts SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int stack_of_getppid(void *ctx)
{
	__u32 id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
	__u32 one = 1;

	bpf_map_update_elem(&counts, &id, &one, BPF_ANY);
	return 0;
}
