/* socket_filter: at the UDP sockets it is attached to, drops datagrams whose payload starts with a marker.
 * Demonstrates a socket filter program (SEC "socket", SO_ATTACH_BPF) reading with bpf_skb_load_bytes. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "socket_filter.h"

char LICENSE[] SEC("license") = "GPL";

/* key 0: datagrams kept, key 1: datagrams dropped */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

static __always_inline void count(__u32 key)
{
	__u64 *n = bpf_map_lookup_elem(&verdicts, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("socket")
int socket_filter(struct __sk_buff *skb)
{
	__u64 head, marker;

	/* at a UDP socket's filter skb->data is the UDP header: the payload starts 8 bytes on */
	__builtin_memcpy(&marker, SOCKET_FILTER_MARKER, sizeof(marker));
	if (bpf_skb_load_bytes(skb, sizeof(struct udphdr), &head, sizeof(head)) == 0 &&
	    head == marker) {
		count(1);
		return 0; /* keep 0 bytes: the datagram is dropped */
	}
	count(0);
	return skb->len; /* keep all of it */
}
