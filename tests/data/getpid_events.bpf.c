/* One ring-buffer event (the caller's tgid) per getpid() call.
 * Used by the plugin's real-kernel test through the bpf fixture. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("tp/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	__u32 *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (e) {
		*e = bpf_get_current_pid_tgid() >> 32;
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}
