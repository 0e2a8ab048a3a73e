/* arena_demo: a syscall program allocates an arena page; a tracepoint program counts into it; user space reads it by mmap.
 * Demonstrates BPF_MAP_TYPE_ARENA (6.9): memory shared by BPF programs and a process, with no map lookups. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "arena_demo.h"

char LICENSE[] SEC("license") = "GPL";

/* spelled out: older vmlinux.h files (this program also compiles against 5.10's) lack them */
#define MAP_TYPE_ARENA 33 /* BPF_MAP_TYPE_ARENA */
#define MAP_F_MMAPABLE (1U << 10) /* BPF_F_MMAPABLE */
#define NUMA_NO_NODE (-1)
#define ENOMEM 12

struct {
	__uint(type, MAP_TYPE_ARENA);
	__uint(map_flags, MAP_F_MMAPABLE);
	__uint(max_entries, ARENA_PAGES); /* pages, not entries */
	__uint(map_extra, ARENA_USER_BASE);
} arena SEC(".maps");

/* returns the page's address as user space sees it, or NULL; on 6.9 only sleepable programs may call it */
extern void *bpf_arena_alloc_pages(void *map, void *addr, __u32 page_cnt, int node_id,
				   __u64 flags) __ksym;

/*
 * A kfunc's 'void *' result is a plain number to the verifier: an arena pointer it can
 * check comes only from the addr_space_cast instruction (cast from address space 1 to 0).
 * clang emits that instruction for __attribute__((address_space(1))) pointers from LLVM
 * 18 on; this project pins clang 14, so it is encoded by hand:
 * BPF_ALU64|BPF_MOV|BPF_X (0xbf), r0 <- r0, off = BPF_ADDR_SPACE_CAST (1), imm = 1.
 * The JIT keeps the low 32 bits and adds the arena's kernel base on every access.
 */
static __always_inline void *arena_ptr(__u64 user_addr)
{
	void *p;

	asm volatile("r0 = %[addr]\n\t"
		     ".quad 0x00000001000100bf\n\t" /* r0 = addr_space_cast(r0, 0, 1) */
		     "%[p] = r0"
		     : [p] "=r"(p)
		     : [addr] "r"(user_addr)
		     : "r0");
	return p;
}

/* run by the check with BPF_PROG_TEST_RUN: syscall programs are sleepable, as the kfunc needs */
SEC("syscall")
int arena_setup(struct setup_args *args)
{
	void *page = bpf_arena_alloc_pages(&arena, (void *)ARENA_USER_BASE, 1, NUMA_NO_NODE, 0);
	struct arena_header *hdr;

	args->page_addr = (__u64)page;
	if (!page) {
		args->ret = -ENOMEM;
		return 0;
	}
	hdr = arena_ptr((__u64)page);
	hdr->magic = args->magic;
	hdr->getppid_calls = 0;
	args->ret = 0;
	return 0;
}

/* a tracepoint program is not sleepable: it does not allocate, it uses the page that exists */
SEC("tp/syscalls/sys_enter_getppid")
int count_getppid(void *ctx)
{
	struct arena_header *hdr;

	/*
	 * The verifier ties a program to its arena through a map reference in its code; this
	 * one makes no map call, so it loads the map's address into a register it then ignores.
	 */
	asm volatile("" : : "r"(&arena));
	hdr = arena_ptr(ARENA_USER_BASE);

	/* a load from an arena page not yet allocated reads 0, it does not fault */
	if (!hdr->target_pid || hdr->target_pid != bpf_get_current_pid_tgid() >> 32)
		return 0;
	hdr->getppid_calls++;
	return 0;
}
