/* Map key and value shared by lsm_bprm_block.bpf.c and check.py (both "<QII" there). */
#ifndef LSM_BPRM_BLOCK_H
#define LSM_BPRM_BLOCK_H

/* Identity of a marked binary. dev is the kernel's dev_t (MAJOR << 20 | MINOR), not the
 * encoding stat(2) returns: user space converts. */
struct file_id {
	__u64 ino;
	__u32 dev;
	__u32 pad; /* always 0, so keys compare equal byte for byte */
};

struct denial {
	__u64 count;    /* execs refused */
	__u32 last_pid; /* tgid of the process whose exec was refused last */
	__u32 pad;
};

#endif
