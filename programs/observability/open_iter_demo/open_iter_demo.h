/* Shared by open_iter_demo.bpf.c and check.py (struct formats "<III" and "<qQ"). */
#ifndef OPEN_ITER_DEMO_H
#define OPEN_ITER_DEMO_H

struct iter_config {
	__u32 pid;     /* process whose getppid() runs the loop; 0: nobody */
	__u32 end;     /* the loop walks 0 .. end-1 */
	__u32 stop_at; /* break after this many iterations; 0: never */
};

struct iter_result {
	__s64 ret; /* iterations done, or bpf_iter_num_new()'s negative errno */
	__u64 sum; /* sum of the numbers the iterator produced */
};

#endif
