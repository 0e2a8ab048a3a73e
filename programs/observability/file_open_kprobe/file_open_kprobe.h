/* Event shared by file_open_kprobe.bpf.c and check.py (decoded there with struct "<IIIIq256s"). */
#ifndef FILE_OPEN_KPROBE_H
#define FILE_OPEN_KPROBE_H

#define FILE_OPEN_PATH_LEN 256

struct open_event {
	__u32 pid;   /* tgid of the caller */
	__u32 tid;   /* its thread id */
	__u32 flags; /* O_* flags as passed to open/openat/openat2 */
	__u32 pad;
	__s64 ret;   /* the new fd or a negative errno */
	char path[FILE_OPEN_PATH_LEN]; /* path as passed by the caller */
};

#endif
