/* netkit_pair: egress policy for the peer side of a netkit pair: drops UDP to one port, passes the rest.
 * Demonstrates a program attached to a netkit device (6.7) with a BPF link, returning NETKIT_* verdicts. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

/* enum netkit_action in include/uapi/linux/if_link.h (6.7), spelled out so the object also
 * builds against older kernels' vmlinux.h */
#define NK_PASS 0
#define NK_DROP 2
#define ETH_P_IP 0x0800
#define IP_OFFSET_MASK 0x1FFF /* fragment offset bits of iphdr.frag_off */

/* key 0: the UDP destination port to drop, host byte order; 0 drops nothing */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} drop_port SEC(".maps");

/* packets seen, indexed by verdict: NK_PASS (0) and NK_DROP (2) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NK_DROP + 1);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

static __always_inline int verdict(__u32 v)
{
	__u64 *n = bpf_map_lookup_elem(&verdicts, &v);

	if (n)
		*n += 1; /* per-CPU slot: no atomic needed */
	return v;
}

/* SEC("netkit/peer") is libbpf 1.3's name for this; the guest's libbpf 1.1 does not know
 * it, so the object says "tc" (the same program type, BPF_PROG_TYPE_SCHED_CLS) and the
 * check creates the netkit link itself */
SEC("tc")
int netkit_pair(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data; /* netkit keeps an Ethernet header even in L3 mode */
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *udp;
	__u32 zero = 0, *port, ihl;

	if ((void *)(iph + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return verdict(NK_PASS);
	if (iph->protocol != IPPROTO_UDP || (iph->frag_off & bpf_htons(IP_OFFSET_MASK)))
		return verdict(NK_PASS);
	ihl = (*(__u8 *)iph & 0x0F) * 4; /* header length, in 32-bit words on the wire */
	if (ihl < sizeof(*iph))
		return verdict(NK_PASS);
	udp = (void *)iph + ihl;
	if ((void *)(udp + 1) > end)
		return verdict(NK_PASS);

	port = bpf_map_lookup_elem(&drop_port, &zero);
	if (port && *port && bpf_ntohs(udp->dest) == *port)
		return verdict(NK_DROP);
	return verdict(NK_PASS);
}
