/* Shared by arena_demo.bpf.c and check.py (struct formats "<QQq" and "<IIQQ"). */
#ifndef ARENA_DEMO_H
#define ARENA_DEMO_H

/*
 * Where the arena sits in the user process that maps it (map_extra). Fixed, because this
 * libbpf (1.1) does not map arenas itself and the verifier wants the address known at
 * load time; below 4 GiB because libbpf 1.1 reads map_extra as 32 bits.
 */
#define ARENA_USER_BASE 0x40000000ULL
#define ARENA_PAGES 4
#define ARENA_PAGE_SIZE 4096

/* context of the arena_setup syscall program (BPF_PROG_TEST_RUN copies it back) */
struct setup_args {
	__u64 page_addr; /* out: user address of the page the kfunc gave, 0 on failure */
	__u64 magic;     /* in: written into the header by the program */
	__s64 ret;       /* out: 0, or -ENOMEM when the kfunc failed */
};

/* arena page 0, shared by the programs and the user process without any map call */
struct arena_header {
	__u32 target_pid; /* written by user space: whose getppid() calls to count */
	__u32 pad;
	__u64 magic;      /* written by arena_setup */
	__u64 getppid_calls; /* counted by count_getppid */
};

#endif
