/* Event shared by exec_trace.bpf.c and check.py (decoded there with struct "<II16s256s"). */
#ifndef EXEC_TRACE_H
#define EXEC_TRACE_H

#define EXEC_TRACE_COMM_LEN 16
#define EXEC_TRACE_FILENAME_LEN 256

struct exec_event {
	__u32 pid;  /* tgid of the task that called execve */
	__u32 ppid; /* tgid of its parent */
	char comm[EXEC_TRACE_COMM_LEN];
	char filename[EXEC_TRACE_FILENAME_LEN]; /* path as passed to execve */
};

#endif
