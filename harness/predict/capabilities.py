"""What a kernel offers BPF, read from its own BTF: the helpers, program, map, attach and
link types its uapi enums list, its kfuncs, the functions fentry/fexit can name, its
tracepoints, LSM hooks and struct_ops types. A table of mainline versions cannot know
what a distribution backported or left out; the kernel's BTF does. Pure.

How each fact shows in BTF (the kernel's own conventions):
- helpers: ``enum bpf_func_id`` (BPF_FUNC_map_lookup_elem ...); program, map, attach and
  link types: ``enum bpf_prog_type``, ``bpf_map_type``, ``bpf_attach_type``,
  ``bpf_link_type`` (names as libbpf spells them: the prefix dropped, lower case);
- kfuncs: functions carrying a ``bpf_kfunc`` declaration tag (pahole 1.25 and later
  emit them, kernels from about 6.8); without tags, every function in BTF is a candidate
  and the answer says it is less sure;
- raw and BTF tracepoints: the ``btf_trace_<event>`` typedefs, one per tracepoint;
- LSM hooks: the ``bpf_lsm_<hook>`` functions; struct_ops: ``bpf_struct_ops_<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bpfobj import btf as B

_ENUMS = {"helpers": ("bpf_func_id", "BPF_FUNC_", "bpf_"),
          "prog_types": ("bpf_prog_type", "BPF_PROG_TYPE_", ""),
          "map_types": ("bpf_map_type", "BPF_MAP_TYPE_", ""),
          "attach_types": ("bpf_attach_type", "BPF_", ""),
          "link_types": ("bpf_link_type", "BPF_LINK_TYPE_", "")}
# enum entries that are not types (counters, aliases kept for old code)
_NOT_TYPES = ("unspec", "__max_bpf_attach_type", "max_bpf_attach_type", "max")


@dataclass(frozen=True)
class Capabilities:
    helpers: frozenset[str]  # 'bpf_map_lookup_elem'
    prog_types: frozenset[str]  # 'kprobe', 'sched_cls'
    map_types: frozenset[str]  # 'hash', 'ringbuf'
    attach_types: frozenset[str]  # 'trace_fentry', 'cgroup_inet_ingress'
    link_types: frozenset[str]
    functions: frozenset[str]  # every function in BTF (fentry/fexit/LSM targets)
    kfuncs: frozenset[str]  # tagged kfuncs; empty when the kernel tags none
    kfuncs_tagged: bool
    tracepoints: frozenset[str]  # 'sched_switch' (from btf_trace_sched_switch)
    lsm_hooks: frozenset[str]  # 'file_open' (from bpf_lsm_file_open)
    struct_ops: frozenset[str]  # 'tcp_congestion_ops' (from bpf_struct_ops_tcp_congestion_ops)

    def has_kfunc(self, name: str) -> bool:
        return name in (self.kfuncs if self.kfuncs_tagged else self.functions)


def _enum_names(btf: B.BTF, enum: str, prefix: str, new_prefix: str) -> frozenset[str]:
    out: set[str] = set()
    for t in btf.named(enum):
        if t.kind not in (B.ENUM, B.ENUM64):
            continue
        for m in t.members:
            if m.name.startswith(prefix):
                name = m.name[len(prefix):].lower()
                if name and not name.startswith("__") and name not in _NOT_TYPES:
                    out.add(new_prefix + name if new_prefix else name)
    return frozenset(out)


def capabilities(btf: B.BTF) -> Capabilities:
    """A kernel's capabilities from its vmlinux BTF."""
    enums = {k: _enum_names(btf, *v) for k, v in _ENUMS.items()}
    functions = frozenset(t.name for t in btf.of_kind(B.FUNC))
    tagged = frozenset(btf[t.size_or_type].name for t in btf.of_kind(B.DECL_TAG)
                       if t.name == "bpf_kfunc" and 0 < t.size_or_type < len(btf.types))
    tracepoints = frozenset(t.name[len("btf_trace_"):] for t in btf.of_kind(B.TYPEDEF)
                            if t.name.startswith("btf_trace_"))
    lsm = frozenset(f[len("bpf_lsm_"):] for f in functions if f.startswith("bpf_lsm_"))
    struct_ops = frozenset(t.name[len("bpf_struct_ops_"):] for t in btf.of_kind(B.STRUCT)
                           if t.name.startswith("bpf_struct_ops_"))
    return Capabilities(helpers=enums["helpers"], prog_types=enums["prog_types"],
                        map_types=enums["map_types"], attach_types=enums["attach_types"],
                        link_types=enums["link_types"], functions=functions, kfuncs=tagged,
                        kfuncs_tagged=bool(tagged), tracepoints=tracepoints, lsm_hooks=lsm,
                        struct_ops=struct_ops)
