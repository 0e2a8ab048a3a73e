/* Map value shared by lsm_socket_connect.bpf.c and check.py (decoded there with struct "<QII"). */
#ifndef LSM_SOCKET_CONNECT_H
#define LSM_SOCKET_CONNECT_H

struct denial {
	__u64 count;    /* connect() calls refused */
	__u32 last_pid; /* tgid of the process refused last */
	__u32 pad;
};

#endif
