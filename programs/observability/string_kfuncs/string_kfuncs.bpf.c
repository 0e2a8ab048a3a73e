/* string_kfuncs: searches the paths one process passes to openat(2) for a substring, counting the matches.
 * Demonstrates the read-only string kfuncs (bpf_strstr, bpf_strlen; 6.17): no hand-rolled bounded loops. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "string_kfuncs.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * Both take kernel addresses only (a user pointer gives -ERANGE), read them fault-safely
 * and stop at XATTR_SIZE_MAX; "__ign" tells the verifier to skip its argument checks.
 * Kernels without them fail at load: libbpf finds no such function in the kernel's BTF.
 */
extern int bpf_strstr(const char *s1__ign, const char *s2__ign) __ksym;
extern int bpf_strlen(const char *s__ign) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct match_config);
} search_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct match_result);
} result SEC(".maps");

/* the path is copied here first: kernel memory, and too big for the 512-byte stack twice */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[PATH_LEN]);
} path_buf SEC(".maps");

SEC("tp/syscalls/sys_enter_openat")
int search_path(struct trace_event_raw_sys_enter *ctx)
{
	__u32 zero = 0;
	struct match_config *cfg;
	struct match_result *res;
	char *path;
	int at;

	cfg = bpf_map_lookup_elem(&search_cfg, &zero);
	if (!cfg || !cfg->pid || cfg->pid != bpf_get_current_pid_tgid() >> 32)
		return 0;
	res = bpf_map_lookup_elem(&result, &zero);
	path = bpf_map_lookup_elem(&path_buf, &zero);
	if (!res || !path)
		return 0;
	/* openat(dfd, filename, flags, mode): the path is argument 1 */
	if (bpf_probe_read_user_str(path, PATH_LEN, (const char *)ctx->args[1]) < 0)
		return 0;

	at = bpf_strstr(path, cfg->needle);
	res->opens++;
	res->index = at;
	res->length = bpf_strlen(path);
	if (at >= 0)
		res->matches++;
	return 0;
}
