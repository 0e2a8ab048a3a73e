/* uprobe_func: counts calls of glibc's getppid() per process, and records what each call returned.
 * Demonstrates a uprobe and a uretprobe on a shared-library function, attached by path and symbol name. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "uprobe_func.h"

char LICENSE[] SEC("license") = "GPL";

/* tgid -> its calls; user space deletes a key to start counting afresh */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct call_stats);
} stats SEC(".maps");

/*
 * libbpf finds getppid in the library's symbol table and attaches at its file offset, so
 * every process mapping this libc is probed, whatever path it loaded it through. Debian
 * keeps libc under the architecture's multiarch directory.
 */
#if defined(__TARGET_ARCH_arm64)
#define LIBC "/lib/aarch64-linux-gnu/libc.so.6"
#else
#define LIBC "/lib/x86_64-linux-gnu/libc.so.6"
#endif

SEC("uprobe/" LIBC ":getppid")
int BPF_KPROBE(getppid_entry)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct call_stats *s, zero = {};

	s = bpf_map_lookup_elem(&stats, &tgid);
	if (!s) {
		bpf_map_update_elem(&stats, &tgid, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&stats, &tgid);
		if (!s)
			return 0;
	}
	__sync_fetch_and_add(&s->calls, 1);
	return 0;
}

SEC("uretprobe/" LIBC ":getppid")
int BPF_KRETPROBE(getppid_return, int ret)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct call_stats *s = bpf_map_lookup_elem(&stats, &tgid);

	if (!s)
		return 0; /* the entry probe did not count this call */
	__sync_fetch_and_add(&s->returns, 1);
	s->last_ret = ret;
	return 0;
}
