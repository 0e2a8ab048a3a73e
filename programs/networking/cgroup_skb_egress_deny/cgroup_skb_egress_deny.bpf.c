/* cgroup_skb_egress_deny: drops TCP and UDP packets to one destination port sent from the cgroups it guards.
 * Demonstrates a cgroup_skb/egress program (attached with a cgroup BPF link, 5.7); the sender gets EPERM. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IP_OFFSET_MASK 0x1FFF /* fragment offset bits of iphdr.frag_off */
#define CG_DROP 0 /* cgroup_skb verdicts: 0 drops (the sender sees EPERM), 1 lets through */
#define CG_PASS 1

/* key 0: the destination port to deny, host byte order; 0 denies nothing */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} deny_port SEC(".maps");

/* key 0: packets dropped */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} denied SEC(".maps");

SEC("cgroup_skb/egress")
int deny_egress_port(struct __sk_buff *skb)
{
	__u32 zero = 0, *port, l4;
	__u64 *n;
	__be16 dport;
	__u8 proto;

	port = bpf_map_lookup_elem(&deny_port, &zero);
	if (!port || !*port)
		return CG_PASS;

	/* at cgroup egress the packet starts at its network header */
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr iph;

		if (bpf_skb_load_bytes(skb, 0, &iph, sizeof(iph)))
			return CG_PASS;
		if (iph.frag_off & bpf_htons(IP_OFFSET_MASK))
			return CG_PASS; /* a later fragment: no ports in it */
		proto = iph.protocol;
		l4 = iph.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return CG_PASS;
		proto = ip6.nexthdr; /* extension headers are not followed */
		l4 = sizeof(ip6);
	} else {
		return CG_PASS;
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return CG_PASS;
	/* TCP and UDP headers both open with the source port, then the destination port */
	if (bpf_skb_load_bytes(skb, l4 + 2, &dport, sizeof(dport)))
		return CG_PASS;
	if (bpf_ntohs(dport) != *port)
		return CG_PASS;

	n = bpf_map_lookup_elem(&denied, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	return CG_DROP;
}
