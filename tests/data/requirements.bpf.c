/* One program per feature, for `requirements`: each needs exactly one thing newer than
 * what the others need. No vmlinux.h: only the UAPI header and libbpf's helpers. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct task_struct;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, long);
} ts SEC(".maps");

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

SEC("tp/syscalls/sys_enter_getpid")
int uses_ringbuf(void *ctx)
{
	long v = 1;

	bpf_ringbuf_output(&rb, &v, sizeof(v), 0);
	return 0;
}

static long step(__u32 i, void *ctx)
{
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int uses_loop(void *ctx)
{
	bpf_loop(4, step, 0, 0);
	return 0;
}

SEC("kprobe/vfs_read")
int uses_func_ip(void *ctx)
{
	return bpf_get_func_ip(ctx) == 0;
}

SEC("fentry/vfs_read")
int uses_kfunc(void *ctx)
{
	bpf_rcu_read_lock();
	bpf_rcu_read_unlock();
	return 0;
}

SEC("lsm/file_open")
int uses_lsm(void *ctx)
{
	return 0;
}

SEC("tp_btf/sched_switch")
int uses_task_storage(void *ctx)
{
	struct task_struct *t = bpf_get_current_task_btf();

	bpf_task_storage_get(&ts, t, 0, 0);
	return 0;
}

SEC("kprobe.multi/vfs_*")
int uses_kprobe_multi(void *ctx)
{
	return 0;
}

SEC("tcx/ingress")
int uses_tcx(struct __sk_buff *skb)
{
	return 0;
}

SEC("xdp")
int plain_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}
