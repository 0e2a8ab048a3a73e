/* file_open_fentry: reports every open (pid, flags, path) when it starts and, with its fd, when it returns.
 * Demonstrates fentry/fexit (BPF trampolines, 5.5) on do_sys_openat2 with typed arguments, events through a ring buffer. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "file_open_fentry.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline int emit(__u32 kind, const char *filename, struct open_how *how, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct open_event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0; /* ring full: the event is lost, the open goes on */
	e->kind = kind;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	/* a trampoline program gets typed pointers: a plain load, no bpf_probe_read_kernel */
	e->flags = how->flags;
	e->ret = ret;
	/* the path is still in the caller's memory: a user-space read */
	if (bpf_probe_read_user_str(e->path, sizeof(e->path), filename) < 0)
		e->path[0] = '\0';
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* open(2), openat(2) and openat2(2) all go through do_sys_openat2 (5.6 on) */
SEC("fentry/do_sys_openat2")
int BPF_PROG(open_entry, int dfd, const char *filename, struct open_how *how)
{
	return emit(OPEN_ENTRY, filename, how, 0);
}

/* fexit sees the arguments as well as the return value: no entry/exit bookkeeping */
SEC("fexit/do_sys_openat2")
int BPF_PROG(open_exit, int dfd, const char *filename, struct open_how *how, long ret)
{
	/* do_sys_openat2 returns long on 5.10-6.12 and int on 7.x: only the low 32 bits count */
	return emit(OPEN_EXIT, filename, how, (int)ret);
}
