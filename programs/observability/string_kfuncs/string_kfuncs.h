/* Shared by string_kfuncs.bpf.c and check.py (struct formats "<I32s" and "<QiiQ"). */
#ifndef STRING_KFUNCS_H
#define STRING_KFUNCS_H

#define NEEDLE_LEN 32
#define PATH_LEN 256

struct match_config {
	__u32 pid;                /* process whose openat() paths are searched; 0: nobody */
	char needle[NEEDLE_LEN];  /* NUL-terminated substring to look for */
};

struct match_result {
	__u64 opens;   /* openat() calls of that process seen */
	__s32 index;   /* bpf_strstr() on the last path: offset of the needle, or -ENOENT */
	__s32 length;  /* bpf_strlen() of the last path */
	__u64 matches; /* paths that contained the needle */
};

#endif
