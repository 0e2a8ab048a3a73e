/* sk_lookup_steer: hands TCP connections for one port to a socket listening on another.
 * Demonstrates an sk_lookup program (5.9) picking a socket from a SOCKMAP with bpf_sk_assign. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* key 0: the local port whose connections are steered, host byte order; 0 steers nothing */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} steer_port SEC(".maps");

/* key 0: the listening socket that receives them, put here by user space */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} target SEC(".maps");

/* key 0: connections steered */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} steered SEC(".maps");

SEC("sk_lookup")
int steer(struct bpf_sk_lookup *ctx)
{
	__u32 zero = 0, *port;
	struct bpf_sock *sk;
	__u64 *n;
	long err;

	port = bpf_map_lookup_elem(&steer_port, &zero);
	if (!port || !*port || ctx->protocol != IPPROTO_TCP || ctx->local_port != *port)
		return SK_PASS; /* the regular lookup decides */

	sk = bpf_map_lookup_elem(&target, &zero);
	if (!sk)
		return SK_PASS; /* no listener yet: fall back to the regular lookup */
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err)
		return SK_DROP;

	n = bpf_map_lookup_elem(&steered, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	return SK_PASS;
}
