/* file_open_kprobe: reports every completed open (pid, flags, path, fd) to user space.
 * Demonstrates a kprobe/kretprobe pair with CO-RE reads (BPF_KPROBE), arguments stashed per thread, ring buffer (5.8). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "file_open_kprobe.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/*
 * thread id -> the open it is in. A kretprobe sees only the return value, so the entry
 * probe keeps what the exit needs; the path is copied at entry, while the caller's
 * buffer is certain to hold it. Per-thread, so the value lives in a map, not on a stack.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct open_event);
} in_flight SEC(".maps");

/* an all-zero event to start from: 280 bytes do not fit the 512-byte stack twice */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct open_event);
} scratch SEC(".maps");

/* open(2), openat(2) and openat2(2) all go through do_sys_openat2 (5.6 on) */
SEC("kprobe/do_sys_openat2")
int BPF_KPROBE(open_entry, int dfd, const char *filename, struct open_how *how)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, zero = 0;
	struct open_event *e;

	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	e->pid = id >> 32;
	e->tid = tid;
	/* a kprobe sees raw registers, not typed pointers: the read goes through CO-RE */
	e->flags = BPF_CORE_READ(how, flags);
	e->ret = 0;
	if (bpf_probe_read_user_str(e->path, sizeof(e->path), filename) < 0)
		e->path[0] = '\0';
	bpf_map_update_elem(&in_flight, &tid, e, BPF_ANY);
	return 0;
}

SEC("kretprobe/do_sys_openat2")
int BPF_KRETPROBE(open_exit, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct open_event *stashed, *e;

	stashed = bpf_map_lookup_elem(&in_flight, &tid);
	if (!stashed)
		return 0; /* the entry was missed (probe attached mid-call, or the map was full) */
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		__builtin_memcpy(e, stashed, sizeof(*e));
		/* do_sys_openat2 returns long on 5.10-6.12 and int on 7.x: only the low 32 bits count */
		e->ret = (int)ret;
		bpf_ringbuf_submit(e, 0);
	}
	bpf_map_delete_elem(&in_flight, &tid);
	return 0;
}
