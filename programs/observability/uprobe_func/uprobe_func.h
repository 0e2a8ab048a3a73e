/* Shared by uprobe_func.bpf.c and check.py (struct format "<QQq"). */
#ifndef UPROBE_FUNC_H
#define UPROBE_FUNC_H

struct call_stats {
	__u64 calls;   /* entries into getppid() seen by the uprobe */
	__u64 returns; /* returns from it seen by the uretprobe */
	__s64 last_ret; /* what the last call returned */
};

#endif
