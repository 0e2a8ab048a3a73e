/* Shared by bpf_loop_demo.bpf.c and check.py (struct formats "<III" and "<qQ"). */
#ifndef BPF_LOOP_DEMO_H
#define BPF_LOOP_DEMO_H

struct loop_config {
	__u32 pid;      /* process whose getppid() runs the loop; 0: nobody */
	__u32 nr_loops; /* iterations asked of bpf_loop() */
	__u32 stop_at;  /* the callback asks to stop after this many iterations; 0: never */
};

struct loop_result {
	__s64 ret; /* bpf_loop()'s return: iterations done, or a negative errno */
	__u64 sum; /* sum of the indexes the callback saw */
};

#endif
