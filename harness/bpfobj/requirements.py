"""What each program of an object needs from the kernel, and so its minimum kernel: the
program and attach type its section names, every helper and kfunc it calls, every map
type it uses, its instruction-set features. Versions come from the feature table shipped
in the package (harness/data/kernel_features.toml: mainline releases and the commits
that introduced each feature). Pure, apart from reading the object and the table.

Not counted in the minimum, though listed: BTF kinds (float, decl and type tags, enum64)
that libbpf removes from what it hands an older kernel.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..versions import KernelVersion
from . import btf as btfmod
from .elf import ObjectInfo, read_object
from .insns import Usage, program_usage

# section name (or its part before '/') -> (program type, expected attach type), as
# libbpf maps them; a sleepable '.s' variant maps like its base
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("sk_reuseport/migrate", "sk_reuseport", "sk_reuseport_select_or_migrate"),
    ("sk_reuseport", "sk_reuseport", "sk_reuseport_select"),
    ("kprobe.multi", "kprobe", "trace_kprobe_multi"),
    ("kretprobe.multi", "kprobe", "trace_kprobe_multi"),
    ("kprobe.session", "kprobe", "trace_kprobe_session"),
    ("uprobe.multi", "kprobe", "trace_uprobe_multi"),
    ("uretprobe.multi", "kprobe", "trace_uprobe_multi"),
    ("kprobe", "kprobe", ""), ("kretprobe", "kprobe", ""), ("uprobe", "kprobe", ""),
    ("uretprobe", "kprobe", ""), ("ksyscall", "kprobe", ""), ("kretsyscall", "kprobe", ""),
    ("usdt", "kprobe", ""),
    ("tcx/ingress", "sched_cls", "tcx_ingress"), ("tcx/egress", "sched_cls", "tcx_egress"),
    ("tc/ingress", "sched_cls", "tcx_ingress"), ("tc/egress", "sched_cls", "tcx_egress"),
    ("netkit/primary", "sched_cls", "netkit_primary"), ("netkit/peer", "sched_cls", "netkit_peer"),
    ("tc", "sched_cls", ""), ("classifier", "sched_cls", ""), ("action", "sched_act", ""),
    ("tracepoint", "tracepoint", ""), ("tp_btf", "tracing", "trace_raw_tp"),
    ("tp", "tracepoint", ""),
    ("raw_tracepoint.w", "raw_tracepoint_writable", ""), ("raw_tp.w", "raw_tracepoint_writable", ""),
    ("raw_tracepoint", "raw_tracepoint", ""), ("raw_tp", "raw_tracepoint", ""),
    ("fentry", "tracing", "trace_fentry"), ("fmod_ret", "tracing", "modify_return"),
    ("fexit", "tracing", "trace_fexit"), ("freplace", "ext", ""),
    ("lsm_cgroup", "lsm", "lsm_cgroup"), ("lsm", "lsm", "lsm_mac"),
    ("iter", "tracing", "trace_iter"), ("syscall", "syscall", ""),
    ("xdp.frags/devmap", "xdp", "xdp_devmap"), ("xdp/devmap", "xdp", "xdp_devmap"),
    ("xdp.frags/cpumap", "xdp", "xdp_cpumap"), ("xdp/cpumap", "xdp", "xdp_cpumap"),
    ("xdp.frags", "xdp", "xdp"), ("xdp", "xdp", ""),
    ("perf_event", "perf_event", ""),
    ("lwt_in", "lwt_in", ""), ("lwt_out", "lwt_out", ""), ("lwt_xmit", "lwt_xmit", ""),
    ("lwt_seg6local", "lwt_seg6local", ""),
    ("sockops", "sock_ops", "cgroup_sock_ops"),
    ("sk_skb/stream_parser", "sk_skb", "sk_skb_stream_parser"),
    ("sk_skb/stream_verdict", "sk_skb", "sk_skb_stream_verdict"),
    ("sk_skb/verdict", "sk_skb", "sk_skb_verdict"), ("sk_skb", "sk_skb", ""),
    ("sk_msg", "sk_msg", "sk_msg_verdict"), ("lirc_mode2", "lirc_mode2", "lirc_mode2"),
    ("flow_dissector", "flow_dissector", "flow_dissector"),
    ("cgroup_skb/ingress", "cgroup_skb", "cgroup_inet_ingress"),
    ("cgroup_skb/egress", "cgroup_skb", "cgroup_inet_egress"), ("cgroup/skb", "cgroup_skb", ""),
    ("cgroup/sock_create", "cgroup_sock", "cgroup_inet_sock_create"),
    ("cgroup/sock_release", "cgroup_sock", "cgroup_inet_sock_release"),
    ("cgroup/sock", "cgroup_sock", "cgroup_inet_sock_create"),
    ("cgroup/post_bind4", "cgroup_sock", "cgroup_inet4_post_bind"),
    ("cgroup/post_bind6", "cgroup_sock", "cgroup_inet6_post_bind"),
    ("cgroup/dev", "cgroup_device", "cgroup_device"),
    ("cgroup/bind4", "cgroup_sock_addr", "cgroup_inet4_bind"),
    ("cgroup/bind6", "cgroup_sock_addr", "cgroup_inet6_bind"),
    ("cgroup/connect4", "cgroup_sock_addr", "cgroup_inet4_connect"),
    ("cgroup/connect6", "cgroup_sock_addr", "cgroup_inet6_connect"),
    ("cgroup/connect_unix", "cgroup_sock_addr", "cgroup_unix_connect"),
    ("cgroup/sendmsg4", "cgroup_sock_addr", "cgroup_udp4_sendmsg"),
    ("cgroup/sendmsg6", "cgroup_sock_addr", "cgroup_udp6_sendmsg"),
    ("cgroup/sendmsg_unix", "cgroup_sock_addr", "cgroup_unix_sendmsg"),
    ("cgroup/recvmsg4", "cgroup_sock_addr", "cgroup_udp4_recvmsg"),
    ("cgroup/recvmsg6", "cgroup_sock_addr", "cgroup_udp6_recvmsg"),
    ("cgroup/recvmsg_unix", "cgroup_sock_addr", "cgroup_unix_recvmsg"),
    ("cgroup/getpeername4", "cgroup_sock_addr", "cgroup_inet4_getpeername"),
    ("cgroup/getpeername6", "cgroup_sock_addr", "cgroup_inet6_getpeername"),
    ("cgroup/getsockname4", "cgroup_sock_addr", "cgroup_inet4_getsockname"),
    ("cgroup/getsockname6", "cgroup_sock_addr", "cgroup_inet6_getsockname"),
    ("cgroup/sysctl", "cgroup_sysctl", "cgroup_sysctl"),
    ("cgroup/getsockopt", "cgroup_sockopt", "cgroup_getsockopt"),
    ("cgroup/setsockopt", "cgroup_sockopt", "cgroup_setsockopt"),
    ("sk_lookup", "sk_lookup", "sk_lookup"), ("struct_ops", "struct_ops", ""),
    ("netfilter", "netfilter", "netfilter"), ("socket", "socket_filter", ""),
)
LIBBPF_SANITIZES = ("float", "decl_tag", "type_tag", "enum64")  # BTF kinds (btf.* entries)


def program_types(section: str) -> tuple[str, str] | None:
    """(program type, attach type) for a section name, as libbpf reads it."""
    sec = section.lstrip("?")
    for prefix, ptype, atype in SECTIONS:
        if sec in (prefix, prefix + ".s") or sec.startswith((prefix + "/", prefix + ".s/")):
            return ptype, atype
    return None


@cache
def table() -> dict[str, dict[str, dict[str, Any]]]:
    text = resources.files("harness").joinpath("data", "kernel_features.toml").read_text()
    return tomllib.loads(text)


def helper_names() -> dict[int, str]:
    return {int(v["id"]): k for k, v in table().get("helper", {}).items()}


def map_type_names() -> dict[int, str]:
    return {int(v["id"]): k for k, v in table().get("map_type", {}).items()}


@dataclass(frozen=True)
class Need:
    kind: str  # prog_type, attach_type, helper, kfunc, map_type, insn, btf
    name: str
    since: str = ""  # the mainline release, '' when the table does not know it
    commit: str = ""
    arm64: str = ""  # the release arm64 got it in, when later than since (the JIT's)

    @property
    def version(self) -> KernelVersion | None:
        return KernelVersion.parse(self.since) if self.since else None

    def since_on(self, arch: str) -> str:
        return self.arm64 if arch == "arm64" and self.arm64 else self.since

    def version_on(self, arch: str) -> KernelVersion | None:
        since = self.since_on(arch)
        return KernelVersion.parse(since) if since else None

    def describe(self, arch: str = "amd64") -> str:
        what = {"prog_type": "program type", "attach_type": "attach type",
                "map_type": "map type", "insn": "", "btf": "BTF"}.get(self.kind, self.kind)
        since = self.since_on(arch)
        on = " on arm64" if since != self.since else ""
        return f"{self.name} {what}".strip() + (f" ({since}{on})" if since else "")


@dataclass
class ProgramNeeds:
    name: str
    section: str
    needs: list[Need] = field(default_factory=list)
    min_kernel: str = ""
    because: list[Need] = field(default_factory=list)  # the needs that set min_kernel
    unknown: list[Need] = field(default_factory=list)  # needs the table has no version for

    def minimum_on(self, arch: str) -> tuple[str, list[Need]]:
        """The minimum kernel on an architecture and the needs that set it (arm64 got
        some features later: BPF trampolines in 6.0, the arena in 6.10)."""
        if arch == "amd64":
            return self.min_kernel, self.because
        return _minimum(self.needs, arch)

    def to_dict(self) -> dict[str, Any]:
        arm64, because = self.minimum_on("arm64")
        extra = {"min_kernel_arm64": arm64,
                 "because_arm64": [_need_dict(n) for n in because]} \
            if arm64 != self.min_kernel else {}
        return {"name": self.name, "section": self.section, "min_kernel": self.min_kernel,
                "because": [_need_dict(n) for n in self.because], **extra,
                "needs": [_need_dict(n) for n in self.needs],
                "unknown": [_need_dict(n) for n in self.unknown]}


def _need_dict(n: Need) -> dict[str, str]:
    return {k: v for k, v in asdict(n).items() if v}


def _need(kind: str, name: str) -> Need:
    entry = table().get(kind, {}).get(name, {})
    return Need(kind, name, str(entry.get("since", "")), str(entry.get("commit", "")),
                str(entry.get("arm64", "")))


def _map_types(info: ObjectInfo) -> dict[str, str]:
    """map name -> map type name, from the .maps section's BTF (__uint(type, ...))."""
    out: dict[str, str] = {}
    b = info.btf
    if b is None:
        return out
    names = map_type_names()
    for sec in b.of_kind(btfmod.DATASEC):
        if sec.name != ".maps":
            continue
        for m in sec.members:
            var = b[m.type]
            st = b.resolve(var.size_or_type)
            if st is None or st.kind != btfmod.STRUCT:
                continue
            for mem in st.members:
                if mem.name == "type":
                    ptr = b.resolve(mem.type)
                    arr = b.resolve(ptr.size_or_type) if ptr is not None and \
                        ptr.kind == btfmod.PTR else None
                    if arr is not None and arr.kind == btfmod.ARRAY:
                        out[var.name] = names.get(arr.extra[1], f"map type {arr.extra[1]}")
    return out


def _btf_kinds(info: ObjectInfo) -> list[str]:
    if info.btf is None:
        return []
    kinds = {t.kind for t in info.btf.types[1:]}
    named = {btfmod.FLOAT: "float", btfmod.DECL_TAG: "decl_tag", btfmod.TYPE_TAG: "type_tag",
             btfmod.ENUM64: "enum64"}
    return [v for k, v in named.items() if k in kinds]


def requirements(path: Path, info: ObjectInfo | None = None) -> list[ProgramNeeds]:
    """Per program of the object at path (a compiled .bpf.o), what it needs and its
    minimum kernel; info: the object as read_object read it, when the caller has it.
    Raises ConfigError for a file that is not a BPF object."""
    info = info or read_object(path)
    kconfig = set()
    try:
        if info.btf is not None:
            for sec in info.btf.named(".kconfig", btfmod.DATASEC):
                kconfig |= {info.btf[m.type].name for m in sec.members}
        maps = _map_types(info)
    except btfmod.BTFError as e:  # a type id outside the table: a damaged object
        raise ConfigError(f"{path}: its BTF is damaged ({e}); rebuild the object") from e
    usage = program_usage(path, kconfig)
    helpers = helper_names()
    btf_kinds = _btf_kinds(info)
    out = []
    for name, section in info.programs.items():
        u = usage.get(name, Usage())
        needs: list[Need] = []
        types = program_types(section)
        if types is not None:
            needs.append(_need("prog_type", types[0]))
            if types[1]:
                needs.append(_need("attach_type", types[1]))
        needs += [_need("helper", helpers.get(h, f"helper#{h}")) for h in sorted(u.helpers)]
        needs += [_need("kfunc", k) for k in sorted(u.kfuncs)]
        needs += [_need("map_type", t) for t in sorted({maps[m] for m in u.maps if m in maps})]
        needs += [_need("insn", f) for f in sorted(u.insn)]
        needs += [_need("btf", k) for k in btf_kinds]
        out.append(summarize(name, section, needs))
    return out


def summarize(name: str, section: str, needs: list[Need]) -> ProgramNeeds:
    """The minimum kernel: the highest version among the needs (BTF kinds libbpf
    sanitizes aside), with every need that sets it."""
    p = ProgramNeeds(name, section, needs)
    p.unknown = [n for n in needs if n.version is None]
    p.min_kernel, p.because = _minimum(needs, "amd64")
    return p


def _minimum(needs: list[Need], arch: str) -> tuple[str, list[Need]]:
    """The highest version among the needs on an architecture (BTF kinds libbpf
    sanitizes aside) and the needs that set it."""
    counted = [(n, v) for n in needs if (v := n.version_on(arch)) is not None and
               not (n.kind == "btf" and n.name in LIBBPF_SANITIZES)]
    if not counted:
        return "", []
    top = max(v for _, v in counted)
    return (top.line if top.patch == 0 else str(top)), [n for n, v in counted if v == top]


def render_requirements(objects: list[dict[str, Any]]) -> str:
    """A table per object: program, section, minimum kernel and what sets it, then every
    need with its version."""
    lines: list[str] = []
    for obj in objects:
        lines.append(f"{obj['path']}")
        progs = obj["programs"]
        if not progs:
            lines.append("  (no programs)")
        w = max([7, *(len(p["name"]) for p in progs)])
        sw = max([7, *(len(p["section"]) for p in progs)])
        lines.append(f"  {'program'.ljust(w)}  {'section'.ljust(sw)}  min     because")
        for p in progs:
            because = ", ".join(_short(n) for n in p["because"]) or "—"
            if p.get("min_kernel_arm64"):
                because += (f"; on arm64 {p['min_kernel_arm64']}: "
                            + ", ".join(_short(n, "arm64") for n in p["because_arm64"]))
            lines.append(f"  {p['name'].ljust(w)}  {p['section'].ljust(sw)}  "
                         f"{(p['min_kernel'] or '?').ljust(6)}  {because}")
        for p in progs:
            lines.append(f"  {p['name']} needs: " + ", ".join(_short(n) for n in p["needs"]))
        lines.append("")
    return "\n".join(lines)


def _short(n: dict[str, str], arch: str = "amd64") -> str:
    return Need(n["kind"], n["name"], n.get("since", ""), arm64=n.get("arm64", "")).describe(arch)


def object_minimum(needs: dict[str, ProgramNeeds]) -> ProgramNeeds | None:
    """The program with the highest minimum kernel: the whole object's minimum."""
    known = [p for p in needs.values() if p.min_kernel]
    return max(known, key=lambda p: KernelVersion.parse(p.min_kernel)) if known else None


def check_declaration(subject: str, declared: KernelVersion | None, feature: str,
                      needs: dict[str, ProgramNeeds]) -> str | None:
    """A bundled program's declared minimum against the one read from its object: a
    sentence when they disagree, None when they agree (on major.minor) or either is
    unknown. A declaration above the inference must say why (its feature)."""
    top = object_minimum(needs)
    if declared is None or top is None:
        return None
    inferred = KernelVersion.parse(top.min_kernel)
    because = ", ".join(n.describe() for n in top.because)
    if declared.below_line(inferred):
        return (f"{subject}: declares min_kernel {declared.line} but its object needs "
                f"{because}: fix program.toml")
    if inferred.below_line(declared):
        why = f" (declared for: {feature})" if feature else ": say why in program.toml (feature)"
        return (f"{subject}: declares min_kernel {declared.line}, above the {inferred.line} "
                f"its object needs{why}")
    return None
