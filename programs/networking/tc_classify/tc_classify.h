/* Map key shared by tc_classify.bpf.c and check.py (decoded there with struct "<HBB"). */
#ifndef TC_CLASSIFY_H
#define TC_CLASSIFY_H

struct proto_key {
	__u16 eth_proto; /* EtherType, host byte order: 0x0800 IPv4, 0x86DD IPv6, 0x0806 ARP */
	__u8 ip_proto;   /* IPv4 protocol or IPv6 next header; 0 for non-IP frames */
	__u8 pad;        /* always 0, so keys compare equal byte for byte */
};

#endif
