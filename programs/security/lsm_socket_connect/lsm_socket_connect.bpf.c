/* lsm_socket_connect: refuses with -EPERM connect() to the destination ports user space lists.
 * Demonstrates the BPF LSM socket_connect hook (5.7) reading the caller's sockaddr. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "lsm_socket_connect.h"

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1
#define AF_INET 2
#define AF_INET6 10

/* destination port (host byte order) -> refused connects to it, for IPv4 and IPv6 alike */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, struct denial);
} denied_ports SEC(".maps");

SEC("lsm/socket_connect")
int BPF_PROG(deny_port_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	struct denial *d;
	__u16 family, port;

	if (ret != 0)
		return ret; /* an earlier BPF LSM program already refused */

	/* the kernel's copy of the caller's address; addrlen is the caller's claim, so the
	 * family decides how much of it is read */
	family = BPF_CORE_READ(address, sa_family);
	if (family == AF_INET && addrlen >= (int)sizeof(struct sockaddr_in))
		port = bpf_ntohs(BPF_CORE_READ((struct sockaddr_in *)address, sin_port));
	else if (family == AF_INET6 && addrlen >= (int)sizeof(struct sockaddr_in6))
		port = bpf_ntohs(BPF_CORE_READ((struct sockaddr_in6 *)address, sin6_port));
	else
		return 0;

	d = bpf_map_lookup_elem(&denied_ports, &port);
	if (!d)
		return 0;
	__sync_fetch_and_add(&d->count, 1);
	d->last_pid = bpf_get_current_pid_tgid() >> 32;
	return -EPERM;
}
