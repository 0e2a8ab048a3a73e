/* Event shared by tcp_connect_trace.bpf.c and check.py (decoded there with struct "<IHHHH4s4s16s"). */
#ifndef TCP_CONNECT_TRACE_H
#define TCP_CONNECT_TRACE_H

struct connect_event {
	__u32 pid;      /* tgid of the process that called connect() */
	__u16 family;   /* AF_INET or AF_INET6 */
	__u16 sport;    /* local port, host byte order (already bound when tcp_connect runs) */
	__u16 dport;    /* remote port, host byte order */
	__u16 pad;
	__u8 saddr[4];  /* IPv4 addresses, network order; zero for IPv6 */
	__u8 daddr[4];
	char comm[16];
};

#endif
