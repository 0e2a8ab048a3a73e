/* A fake kernel for tests/test_predict.py: compiled to a BPF object only for its BTF,
 * which then holds, as clang writes them, the facts `predict` reads from a real kernel's
 * BTF (uapi enums, functions, a tracepoint typedef, kfunc tags, a struct). OLD lacks
 * what 5.17-era kernels added and keeps inet_sock.freebind; the other drops it. */
enum bpf_func_id {
	BPF_FUNC_unspec, BPF_FUNC_map_lookup_elem = 1, BPF_FUNC_probe_read = 4,
	BPF_FUNC_get_current_task = 35, BPF_FUNC_probe_read_str = 45,
#ifndef OLD
	BPF_FUNC_probe_read_kernel = 113, BPF_FUNC_get_func_ip = 173, BPF_FUNC_loop = 181,
#endif
};
enum bpf_prog_type {
	BPF_PROG_TYPE_UNSPEC, BPF_PROG_TYPE_SOCKET_FILTER, BPF_PROG_TYPE_KPROBE,
	BPF_PROG_TYPE_TRACEPOINT = 5, BPF_PROG_TYPE_TRACING = 26,
};
enum bpf_attach_type { BPF_CGROUP_INET_INGRESS, BPF_TRACE_RAW_TP = 23, BPF_TRACE_FENTRY = 24 };
enum bpf_map_type {
	BPF_MAP_TYPE_UNSPEC, BPF_MAP_TYPE_HASH,
#ifndef OLD
	BPF_MAP_TYPE_TASK_STORAGE = 29,
#endif
};
struct inet_sock {
#ifdef OLD
	unsigned char freebind: 1;
#endif
	int other;
};
typedef void (*btf_trace_sys_enter)(void *, long);

enum bpf_func_id fake_helpers;
enum bpf_prog_type fake_prog_types;
enum bpf_attach_type fake_attach_types;
enum bpf_map_type fake_map_types;
btf_trace_sys_enter fake_tracepoint;

int inet_bind(struct inet_sock *sk) { return sk->other; }
int __do_sys_getpid(void) { return 1; }
#ifndef OLD
__attribute__((btf_decl_tag("bpf_kfunc"))) void bpf_rcu_read_lock(void) { fake_helpers = 0; }
__attribute__((btf_decl_tag("bpf_kfunc"))) void bpf_rcu_read_unlock(void) { fake_helpers = 1; }
#endif
