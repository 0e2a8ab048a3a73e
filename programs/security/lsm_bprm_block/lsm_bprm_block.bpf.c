/* lsm_bprm_block: refuses with -EPERM every exec of the binaries user space marks by (device, inode).
 * Demonstrates the BPF LSM bprm_check_security hook (5.7), which sees the file about to be run. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "lsm_bprm_block.h"

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1

/* marked binaries -> their refused execs */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct file_id);
	__type(value, struct denial);
} denied SEC(".maps");

SEC("lsm/bprm_check_security")
int BPF_PROG(deny_marked_exec, struct linux_binprm *bprm, int ret)
{
	struct denial *d;
	struct file_id id;

	if (ret != 0)
		return ret; /* an earlier BPF LSM program already refused */

	/* bprm->file is the binary itself; for a script, the hook runs again for the
	 * interpreter, so marking an interpreter also blocks the scripts it would run */
	__builtin_memset(&id, 0, sizeof(id));
	id.ino = BPF_CORE_READ(bprm, file, f_inode, i_ino);
	id.dev = BPF_CORE_READ(bprm, file, f_inode, i_sb, s_dev);

	d = bpf_map_lookup_elem(&denied, &id);
	if (!d)
		return 0;
	__sync_fetch_and_add(&d->count, 1);
	d->last_pid = bpf_get_current_pid_tgid() >> 32;
	return -EPERM;
}
