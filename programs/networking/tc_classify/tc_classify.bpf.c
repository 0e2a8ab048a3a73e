/* tc_classify: counts ingress packets per (EtherType, IP protocol) and marks IP ones by protocol.
 * Demonstrates a tc clsact direct-action classifier (SEC "tc") writing skb->mark. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "tc_classify.h"

char LICENSE[] SEC("license") = "GPL";

#define TC_ACT_OK 0 /* include/uapi/linux/pkt_cls.h: continue, the packet is not changed */
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

/* packets seen per protocol, one counter per CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 256);
	__type(key, struct proto_key);
	__type(value, __u64);
} packets SEC(".maps");

/* key 0: the mark base; an IP packet leaves with skb->mark = base | IP protocol.
 * 0 leaves marks alone. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} mark_base SEC(".maps");

static __always_inline void count(struct proto_key *key)
{
	__u64 one = 1, *n = bpf_map_lookup_elem(&packets, key);

	if (n)
		*n += 1; /* per-CPU slot: no atomic needed */
	else
		bpf_map_update_elem(&packets, key, &one, BPF_NOEXIST);
}

SEC("tc")
int tc_classify(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct proto_key key = {};
	__u32 zero = 0, *base;
	bool ip = false;

	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	key.eth_proto = bpf_ntohs(eth->h_proto);
	if (key.eth_proto == ETH_P_IP) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > end)
			return TC_ACT_OK;
		key.ip_proto = iph->protocol;
		ip = true;
	} else if (key.eth_proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return TC_ACT_OK;
		key.ip_proto = ip6->nexthdr; /* the first header: extension headers not followed */
		ip = true;
	}
	count(&key);

	base = bpf_map_lookup_elem(&mark_base, &zero);
	if (ip && base && *base)
		skb->mark = *base | key.ip_proto;
	return TC_ACT_OK;
}
