/* A map no program uses, of a type 5.10 lacks (task storage, 5.11): libbpf creates
 * every map of an object, so the object fails where that type is missing. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, long);
} unused SEC(".maps");

SEC("tp/syscalls/sys_enter_getpid")
int plain(void *ctx)
{
	return 0;
}
