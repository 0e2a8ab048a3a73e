/* lsm_file_open: refuses with -EPERM every open of the files user space marks by (device, inode).
 * Demonstrates a BPF LSM program (lsm/file_open, 5.7) whose decision is driven by a hash map. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1

/* Identity of a marked file. dev is the kernel's dev_t (MAJOR << 20 | MINOR), not the
 * encoding stat(2) returns: user space converts. */
struct file_id {
	__u64 ino;
	__u32 dev;
	__u32 pad; /* always 0, so keys compare equal byte for byte */
};

/* marked files -> how many opens of each were denied */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct file_id);
	__type(value, __u64);
} denied SEC(".maps");

SEC("lsm/file_open")
int BPF_PROG(deny_marked_open, struct file *file, int ret)
{
	struct file_id id;
	__u64 *count;

	if (ret != 0)
		return ret; /* an earlier BPF LSM program already refused */

	__builtin_memset(&id, 0, sizeof(id));
	id.ino = BPF_CORE_READ(file, f_inode, i_ino);
	id.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);

	count = bpf_map_lookup_elem(&denied, &id);
	if (!count)
		return 0;
	__sync_fetch_and_add(count, 1);
	return -EPERM;
}
