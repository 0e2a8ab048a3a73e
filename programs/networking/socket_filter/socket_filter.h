/* The payload marker shared by socket_filter.bpf.c and check.py (MARKER there). */
#ifndef SOCKET_FILTER_H
#define SOCKET_FILTER_H

#define SOCKET_FILTER_MARKER "BPFDROP!" /* 8 bytes, no terminating NUL on the wire */
#define SOCKET_FILTER_MARKER_LEN 8

#endif
