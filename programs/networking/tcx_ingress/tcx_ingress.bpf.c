/* tcx_ingress: counts the UDP datagrams (and their bytes) arriving for one port, passing them on.
 * Demonstrates a tcx ingress program (6.6), attached with a BPF link instead of a clsact qdisc. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

/* tcx's own return codes (include/uapi/linux/bpf.h, 6.6): TCX_NEXT hands the packet to
 * the next program in the chain, or lets it pass when there is none */
#define TCX_NEXT -1
#define ETH_P_IP 0x0800
#define IP_OFFSET_MASK 0x1FFF /* fragment offset bits of iphdr.frag_off */

/* key 0: the UDP destination port to count, host byte order; 0 counts nothing */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} watch_port SEC(".maps");

/* key 0: datagrams, key 1: their bytes on the wire (skb->len) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void add(__u32 key, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &key);

	if (v)
		*v += n; /* per-CPU slot: no atomic needed */
}

/* SEC("tcx/ingress") is libbpf 1.3's name for this; the guest's libbpf 1.1 does not know
 * it, so the object says "tc" (the same program type, BPF_PROG_TYPE_SCHED_CLS) and the
 * check creates the tcx link itself */
SEC("tc")
int tcx_ingress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *udp;
	__u32 zero = 0, *port, ihl;

	if ((void *)(iph + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TCX_NEXT;
	if (iph->protocol != IPPROTO_UDP || (iph->frag_off & bpf_htons(IP_OFFSET_MASK)))
		return TCX_NEXT;
	ihl = (*(__u8 *)iph & 0x0F) * 4; /* header length, in 32-bit words on the wire */
	if (ihl < sizeof(*iph))
		return TCX_NEXT;
	udp = (void *)iph + ihl;
	if ((void *)(udp + 1) > end)
		return TCX_NEXT;

	port = bpf_map_lookup_elem(&watch_port, &zero);
	if (port && *port && bpf_ntohs(udp->dest) == *port) {
		add(0, 1);
		add(1, skb->len);
	}
	return TCX_NEXT;
}
