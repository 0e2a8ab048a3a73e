/* tcp_connect_trace: reports every active TCP open (pid, ports, IPv4 addresses) as the SYN is about to leave.
 * Demonstrates fentry (5.5) on tcp_connect reading struct sock fields directly, events through a ring buffer (5.8). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "tcp_connect_trace.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

/* tcp_connect() builds and sends the SYN, for IPv4 and IPv6 alike, in the connecting task */
SEC("fentry/tcp_connect")
int BPF_PROG(trace_connect, struct sock *sk)
{
	struct connect_event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	/* sk is a typed (BTF) pointer here: plain loads, relocated by CO-RE */
	e->family = sk->__sk_common.skc_family;
	e->sport = sk->__sk_common.skc_num;
	e->dport = bpf_ntohs(sk->__sk_common.skc_dport);
	e->pad = 0;
	if (e->family == AF_INET) {
		__builtin_memcpy(e->saddr, &sk->__sk_common.skc_rcv_saddr, 4);
		__builtin_memcpy(e->daddr, &sk->__sk_common.skc_daddr, 4);
	} else {
		__builtin_memset(e->saddr, 0, 4);
		__builtin_memset(e->daddr, 0, 4);
	}
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
