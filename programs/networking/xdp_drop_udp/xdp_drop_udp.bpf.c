/* xdp_drop_udp: drops UDP datagrams (IPv4 and IPv6) to one destination port set by user space.
 * Demonstrates XDP packet parsing with bounds checks and per-action counters in a per-CPU array. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IP_OFFSET_MASK 0x1FFF /* fragment offset bits of iphdr.frag_off */

/* key 0: the UDP destination port to drop, host byte order; 0 drops nothing */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} drop_port SEC(".maps");

/* packets seen, indexed by the XDP action returned (XDP_ABORTED .. XDP_REDIRECT) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDP_REDIRECT + 1);
	__type(key, __u32);
	__type(value, __u64);
} action_count SEC(".maps");

static __always_inline int count(__u32 action)
{
	__u64 *n = bpf_map_lookup_elem(&action_count, &action);

	if (n)
		*n += 1; /* per-CPU slot: no atomic needed */
	return action;
}

/* The UDP header after the IP header, or NULL if the packet is not (the first fragment of) UDP. */
static __always_inline struct udphdr *udp_header(void *data, void *end)
{
	struct ethhdr *eth = data;
	void *l4;

	if ((void *)(eth + 1) > end)
		return NULL;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 ihl;

		if ((void *)(ip + 1) > end)
			return NULL;
		if (ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(IP_OFFSET_MASK)))
			return NULL;
		ihl = (*(__u8 *)ip & 0x0F) * 4; /* header length, in 32-bit words on the wire */
		if (ihl < sizeof(*ip))
			return NULL;
		l4 = (void *)ip + ihl;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return NULL;
		if (ip6->nexthdr != IPPROTO_UDP) /* extension headers are not followed */
			return NULL;
		l4 = ip6 + 1;
	} else {
		return NULL;
	}

	if (l4 + sizeof(struct udphdr) > end)
		return NULL;
	return l4;
}

SEC("xdp")
int xdp_drop_udp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct udphdr *udp;
	__u32 key = 0, *port;

	udp = udp_header(data, end);
	if (!udp)
		return count(XDP_PASS);
	port = bpf_map_lookup_elem(&drop_port, &key);
	if (port && *port && bpf_ntohs(udp->dest) == *port)
		return count(XDP_DROP);
	return count(XDP_PASS);
}
