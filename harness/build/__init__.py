"""Building BPF objects on the host: vmlinux.h from a kernel's BTF, and clang."""
