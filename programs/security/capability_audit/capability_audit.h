/* Event shared by capability_audit.bpf.c and check.py (decoded there with struct "<IIiI16s"). */
#ifndef CAPABILITY_AUDIT_H
#define CAPABILITY_AUDIT_H

#define CAPABILITY_AUDIT_COMM_LEN 16

struct cap_event {
	__u32 pid;  /* tgid of the task whose capability is checked */
	__u32 uid;  /* its real uid */
	__s32 cap;  /* CAP_* number, e.g. 21 for CAP_SYS_ADMIN */
	__u32 opts; /* CAP_OPT_* flags of the check, e.g. CAP_OPT_NOAUDIT */
	char comm[CAPABILITY_AUDIT_COMM_LEN];
};

#endif
