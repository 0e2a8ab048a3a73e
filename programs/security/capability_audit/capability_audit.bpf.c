/* capability_audit: reports every capability check (pid, uid, capability, flags) as it happens.
 * Demonstrates a kprobe on cap_capable, the commoncap LSM's answer, feeding a BPF ring buffer (5.8). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "capability_audit.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* ring buffer records that did not fit: the reader was too slow */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* int cap_capable(const struct cred *cred, struct user_namespace *targ_ns, int cap,
 *                 unsigned int opts), the form since 5.1 */
SEC("kprobe/cap_capable")
int BPF_KPROBE(on_cap_capable, const struct cred *cred, struct user_namespace *targ_ns,
	       int cap, unsigned int opts)
{
	struct cap_event *e;
	__u32 key = 0;
	__u64 *n;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		n = bpf_map_lookup_elem(&lost, &key);
		if (n)
			__sync_fetch_and_add(n, 1);
		return 0;
	}
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->cap = cap;
	e->opts = opts;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
