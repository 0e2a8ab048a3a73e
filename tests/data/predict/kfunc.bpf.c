/* A kfunc (bpf_rcu_read_lock, 6.2). On its own: libbpf resolves every kfunc an object
 * declares before loading any program, so one missing kfunc fails the whole object. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

/* a kfunc (6.2) */
SEC("tp_btf/sys_enter")
int kfunc_rcu(void *ctx)
{
	bpf_rcu_read_lock();
	bpf_rcu_read_unlock();
	return 0;
}

