/* Shared by syscall_latency_hist.bpf.c and check.py. */
#ifndef SYSCALL_LATENCY_HIST_H
#define SYSCALL_LATENCY_HIST_H

/* slot n counts calls that took [2^n, 2^(n+1)) ns; slot 0 also takes 0 ns */
#define HIST_SLOTS 64

#endif
