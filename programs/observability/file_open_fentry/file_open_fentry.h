/* Event shared by file_open_fentry.bpf.c and check.py (decoded there with struct "<IIIIq256s"). */
#ifndef FILE_OPEN_FENTRY_H
#define FILE_OPEN_FENTRY_H

#define FILE_OPEN_PATH_LEN 256

enum open_event_kind {
	OPEN_ENTRY = 1, /* from fentry: before the open, the result not known yet */
	OPEN_EXIT = 2,  /* from fexit: after the open, with its result */
};

struct open_event {
	__u32 kind;  /* enum open_event_kind */
	__u32 pid;   /* tgid of the caller */
	__u32 tid;   /* its thread id */
	__u32 flags; /* O_* flags as passed to open/openat/openat2 */
	__s64 ret;   /* OPEN_EXIT: the new fd or a negative errno; OPEN_ENTRY: 0 */
	char path[FILE_OPEN_PATH_LEN]; /* path as passed by the caller */
};

#endif
