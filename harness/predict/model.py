"""A predicted verdict for every (program, kernel) cell, before any kernel boots: the
object loaded the way libbpf (the version the guest runs) would load it, against what
that kernel's own BTF says it has. Pure: the object and the kernel come in as data
(predict/facts.py reads them).

The loader, modelled:
- every map of the object is created (libbpf creates them all, used or not), so a map
  type the kernel lacks fails every program of the object; likewise every kfunc extern
  is resolved at load, so a kfunc the kernel lacks fails the object unless declared weak;
- CO-RE relocations are resolved against the kernel's BTF (bpfobj/core.py); existence
  checks become constants and the branches they rule out are dead (bpfobj/flow.py), so
  what the program needs is counted on the code that can run;
- a relocation that fails on code that can run is a refusal: "CO-RE: field X.y not in
  this kernel";
- bpf_probe_read_kernel/user[_str] fall back to bpf_probe_read[_str] on a kernel without
  them (libbpf rewrites the call);
- a weak extern the kernel lacks is 0 (bpf_ksym_exists() is then false);
- the attach target must exist: a tracepoint (its btf_trace_ typedef), a system call's
  event (its __x64_sys_/__arm64_sys_ function), an LSM hook, in the kernel's BTF; a
  function a kprobe names, in the kernel's own symbol table (kallsyms, read out of its
  image: kernels/kallsyms.py), since BTF leaves functions out; a function a trampoline
  (fentry, fexit) names, in BTF and with an address in kallsyms (BTF keeps functions that
  were inlined everywhere). Where kallsyms cannot be read, BTF's functions stand in;
- an arm64 kernel without BPF trampolines in its JIT cannot load fentry/fexit/LSM
  programs (the feature table's arm64 versions: BTF does not show the JIT's gaps).

What only the verifier can tell (complexity, bounds, a helper allowed for one program
type and not another) is not modelled: such a cell is predicted to pass, and a refusal
there is a disagreement the reports show first. Where the kernel's facts are missing
(no BTF) the prediction is "unknown", never a guess.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..bpfobj import btf as B
from ..bpfobj import verdict as objverdict
from ..bpfobj.btfext import EXISTENCE, CoreRelo
from ..bpfobj.core import Resolution, resolve
from ..bpfobj.elf import ObjectInfo
from ..bpfobj.insns import Code, usages
from ..bpfobj.requirements import _need, helper_names, program_types
from ..versions import KernelVersion
from .capabilities import Capabilities

VERDICTS = ("pass", "reject", "core", "attach", "unknown")
# libbpf rewrites these calls to the old helper on a kernel without them
PROBE_READ_FALLBACK = {"bpf_probe_read_kernel": "bpf_probe_read",
                       "bpf_probe_read_user": "bpf_probe_read",
                       "bpf_probe_read_kernel_str": "bpf_probe_read_str",
                       "bpf_probe_read_user_str": "bpf_probe_read_str"}
SYSCALL_PREFIX = {"amd64": "__x64_sys_", "arm64": "__arm64_sys_"}
# attach types the arm64 JIT got late (BPF trampolines): the table's arm64 versions decide
_TRAMPOLINE = ("trace_fentry", "trace_fexit", "modify_return", "lsm_mac", "lsm_cgroup",
               "trace_iter")


@dataclass(frozen=True)
class Predicted:
    verdict: str  # pass | reject | core | attach | unknown
    reason: str = ""  # what decides it: "needs bpf_loop helper (not in this kernel)"
    setup: bool = False  # unknown because its loader gives the target (a manual attach)

    def to_dict(self) -> dict[str, str]:
        return {"verdict": self.verdict, "reason": self.reason}

    @property
    def refusal(self) -> bool:
        return self.verdict in ("reject", "core", "attach")

    def short(self) -> str:
        return self.verdict + (f": {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class KernelFacts:
    id: str  # the column: '6.12', '6.12/arm64'
    version: KernelVersion
    arch: str
    btf: B.BTF
    caps: Capabilities
    config: Mapping[str, str] | None = None
    release: str = ""  # uname -r: what libbpf reads LINUX_KERNEL_VERSION from
    symbols: frozenset[str] | None = None  # kallsyms' code symbols (None: not read)


@dataclass
class ObjectModel:
    """An object as the loader sees it (predict/facts.read_model reads one)."""

    info: ObjectInfo
    code: Code
    relos: list[CoreRelo]
    kconfig: set[str] = field(default_factory=set)
    maps: dict[str, str] = field(default_factory=dict)  # every map: name -> type name
    weak: set[str] = field(default_factory=set)  # weak extern names
    kfuncs: set[str] = field(default_factory=set)  # every kfunc extern (.ksyms functions)


def _attach(section: str, program: str, target: str | None, k: KernelFacts,
            elsewhere: frozenset[str] = frozenset()) -> Predicted | None:
    """An attach target the kernel lacks, None when it has it (or it cannot be told).
    elsewhere: the functions of the other kernels predicted alongside."""
    base = section.lstrip("?").partition("/")[0].removesuffix(".s")
    what = objverdict.hook(section)
    if what is None and not target and section.lstrip("?") in ("kprobe", "kretprobe"):
        what = ("function", program)  # a bare kprobe: attached to its program's name
    name = target if target else (what[1] if what else "")
    if not name:
        return None
    if base in ("ksyscall", "kretsyscall"):
        if not _has_syscall(name, k):
            return Predicted("attach", f"no system call {name} in this kernel's BTF")
        return None
    if what is None and not target:
        return None
    kind = what[0] if what else "function"
    if kind == "symbol" or (target and ":" in target):
        return None  # a user-space symbol: not the kernel's to say
    if kind == "function":
        if base in ("kprobe.multi", "kretprobe.multi"):
            known = k.symbols if k.symbols is not None else k.caps.functions
            if not any(fnmatch.fnmatchcase(f, name) for f in known):
                return Predicted("attach", f"no function matches {name} in this kernel")
            return None
        fn = name.split("+")[0]
        if base.startswith("lsm"):
            if fn not in k.caps.lsm_hooks:
                return Predicted("attach", f"no LSM hook {fn} in this kernel")
            return None
        if objverdict.is_placeholder(fn) and not target:
            return Predicted("unknown", f"attach target {fn} is a placeholder its loader "
                             "replaces at run time", setup=True)
        if fn == program and not target and base.startswith(("kprobe", "kretprobe")) \
                and fn not in k.caps.functions and fn not in elsewhere:
            return Predicted("unknown", f"kprobe on {fn}, the program's own name and a "
                             "function in none of the kernels: its loader attaches it by hand",
                             setup=True)
        if base.startswith(("kprobe", "kretprobe")) and k.symbols is not None:
            # the kernel looks a kprobe's function up in kallsyms: BTF is beside the point
            if fn not in k.symbols:
                return Predicted("attach", f"no function {fn} in this kernel's symbols "
                                 f"(kallsyms){_inlined(fn, k)}")
            return None
        if fn not in k.caps.functions:
            return Predicted("attach", f"no function {fn} in this kernel's BTF")
        if k.symbols is not None and fn not in k.symbols:
            return Predicted("attach", f"function {fn} is in this kernel's BTF but not in its "
                             f"symbols (kallsyms){_inlined(fn, k)}: no address to attach to")
        return None
    event = name.rsplit("/", 1)[-1]
    if name.startswith("syscalls/sys_"):  # a system call's event, not a tracepoint of its own
        call = event.removeprefix("sys_enter_").removeprefix("sys_exit_")
        if not _has_syscall(call, k):
            return Predicted("attach", f"no system call {call} in this kernel's BTF, so no "
                             f"event {name}")
        return None
    if event not in k.caps.tracepoints:
        return Predicted("attach", f"no tracepoint {name} in this kernel")
    return None


def _inlined(fn: str, k: KernelFacts) -> str:
    """What the compiler left of a function kallsyms lacks: its clones (fn.isra.0,
    fn.part.0, fn.constprop.0), which no name lookup reaches."""
    clones = sorted(s for s in (k.symbols or ()) if s.startswith(fn + "."))
    if not clones:
        return "; inlined or removed" if fn in k.caps.functions else ""
    return f"; only its clone{'s' if len(clones) > 1 else ''} {', '.join(clones[:3])}"


def _has_syscall(call: str, k: KernelFacts) -> bool:
    """A system call by any of the names its SYSCALL_DEFINE gives its functions (the
    architecture's wrapper, the common body): one of them is in BTF where it exists."""
    forms = (SYSCALL_PREFIX.get(k.arch, "__x64_sys_"), "__do_sys_", "__se_sys_", "sys_")
    return any(f + call in k.caps.functions for f in forms)


def _jit_lacks(atype: str | None, k: KernelFacts) -> Predicted | None:
    """A trampoline attach type on an arm64 kernel older than its JIT's trampolines (the
    feature table's arm64 version: BTF does not show the JIT's gaps)."""
    if atype in _TRAMPOLINE and k.arch == "arm64":
        return _table_need("attach_type", atype, k)
    return None


def _table_need(kind: str, name: str, k: KernelFacts) -> Predicted | None:
    """A fact BTF does not show, from the feature table: 'reject' when this kernel's line
    is older than what the table gives on its architecture."""
    need = _need(kind, name)
    v = need.version_on(k.arch)
    if v is not None and k.version.below_line(v):
        return Predicted("reject", f"needs {need.describe(k.arch)} (from the feature table)")
    return None


def predict_object(obj: ObjectModel, k: KernelFacts, setup: Mapping[str, Any] | None = None,
                   elsewhere: frozenset[str] = frozenset()) -> dict[str, Predicted]:
    """program name -> its predicted verdict on kernel k. setup: the resolved set-up file
    (bpfobj/setup.py), whose targets and autoload switches the loader applies; elsewhere:
    the functions of the other kernels predicted alongside (a kprobe named after its own
    program that is a function nowhere is attached by its loader, by hand)."""
    programs = (setup or {}).get("programs", {})
    resolutions = {(r.section, r.insn_off): (r, resolve(r, obj.info.btf, k.btf))
                   for r in obj.relos} if obj.info.btf is not None else {}
    constants = {key: res.value for key, (_, res) in resolutions.items()}
    absent = frozenset(w for w in obj.weak if not k.caps.has_kfunc(w)
                       and w not in k.caps.functions)
    used = usages(obj.code, obj.kconfig, constants, absent, kconfig_values(obj.kconfig, k))
    helpers = helper_names()
    # libbpf creates every map before loading any program: one it cannot create fails all
    object_level: Predicted | None = None
    for m, mtype in sorted(obj.maps.items()):
        if mtype not in k.caps.map_types:
            object_level = Predicted("reject", f"map {m}: type {mtype} not in this kernel "
                                     "(libbpf creates every map of the object)")
            break
    # ... and resolves every kfunc extern of the object: one the kernel lacks, unless weak
    for kf in sorted(obj.kfuncs - obj.weak):
        flat = kf.rsplit("___", 1)[0] if "___" in kf else kf
        if object_level is None and not k.caps.has_kfunc(flat):
            object_level = Predicted("reject", f"kfunc {flat} not in this kernel (libbpf "
                                     "resolves every kfunc the object declares, used or not)")
    out: dict[str, Predicted] = {}
    for name, section in obj.info.programs.items():
        if programs.get(name, {}).get("autoload") is False:
            continue
        out[name] = object_level or _program(name, section, used.get(name), resolutions,
                                             helpers, k, programs.get(name, {}).get("target"),
                                             elsewhere)
    return out


def _program(name: str, section: str, u: Any, resolutions: dict[tuple[str, int],
             tuple[CoreRelo, Resolution]], helpers: dict[int, str], k: KernelFacts,
             target: str | None, elsewhere: frozenset[str] = frozenset()) -> Predicted:
    types = program_types(section)
    if types is None:
        return Predicted("unknown", f"section {section}: libbpf cannot tell its program type")
    ptype, atype = types
    if ptype not in k.caps.prog_types:
        return Predicted("reject", f"needs program type {ptype} (not in this kernel)")
    if atype and atype not in k.caps.attach_types:
        return Predicted("reject", f"needs attach type {atype} (not in this kernel)")
    late = _jit_lacks(atype, k)
    if late is not None:
        return late
    if atype in ("trace_kprobe_multi", "trace_kprobe_session") and k.config is not None \
            and k.config.get("CONFIG_FPROBE") != "y":
        return Predicted("attach", f"{atype} needs CONFIG_FPROBE, not set in this kernel")
    if ptype == "lsm" and k.config is not None and k.config.get("CONFIG_BPF_LSM") != "y":
        return Predicted("reject", "LSM programs need CONFIG_BPF_LSM, not set in this kernel")
    if u is None:
        return Predicted("unknown", "its instructions could not be read")
    for key in sorted(u.core):
        relo, res = resolutions[key]
        if not res.ok and relo.kind not in EXISTENCE:
            return Predicted("core", f"CO-RE: {res.what} {res.why} ({relo.kind_name})")
    for hid in sorted(u.helpers):
        h = helpers.get(hid, f"helper#{hid}")
        if h in k.caps.helpers:
            continue
        old = PROBE_READ_FALLBACK.get(h)
        if old and old in k.caps.helpers:
            continue  # libbpf calls the old helper instead
        return Predicted("reject", f"needs {h} helper (not in this kernel)")
    for kf in sorted(u.kfuncs):
        if not k.caps.has_kfunc(kf):
            where = "" if k.caps.kfuncs_tagged else "'s BTF"
            return Predicted("reject", f"needs kfunc {kf} (not in this kernel{where})")
    for feat in sorted(u.insn):
        late = _table_need("insn", feat, k)
        if late is not None:
            return late
    missing = _attach(section, name, target, k, elsewhere)
    if missing is not None:
        return missing
    args = _context_arguments(section, target, u.ctx_reads, k)
    if args is not None:
        return args
    if u.ctx_moved:  # whatever the kernel: seen here because only this kernel's path has it
        return Predicted("reject", "loads through its context pointer moved by a constant "
                         "(ctx + N) on this kernel's path: the verifier refuses that")
    return Predicted("pass")


def predict_script(blocks: list[list[tuple[str, str | None]]], k: KernelFacts) -> Predicted:
    """A bpftrace script's cell: 'attach' when a probe block with a single attach point
    names a kernel place this kernel lacks (blocks: bpftrace.probe_blocks), by the same
    rules as an object's. bpftrace 0.17 skips the attach points of a list it cannot
    attach, even all of them (seen: xfsdist runs with xfs not loaded, biolatency on 6.1
    without blk_account_io_start), and fails on a lone one (mdflush, swapin). Else
    'unknown': what else a script needs (struct fields of its C declarations, headers,
    the verifier) is not read from it."""
    for block in blocks:
        if len(block) != 1:
            continue
        written, section = block[0]
        if section is None:
            continue
        types = program_types(section)
        missing = (_jit_lacks(types[1], k) if types else None) or _attach(section, "", None, k)
        if missing is not None and missing.verdict != "unknown":
            return Predicted("attach", f"{written}: {missing.reason}")
    return Predicted("unknown", "no probe of it is known to fail here; a bpftrace "
                     "script's fields, headers and verifier verdict are not predicted")


def kconfig_values(names: set[str], k: KernelFacts) -> dict[str, int | None]:
    """What libbpf gives each __kconfig extern on this kernel: LINUX_KERNEL_VERSION from
    the release string (libbpf parses 'uname -r': Debian's 5.10.0-32-amd64 is 5.10.0), a
    CONFIG_ option from the kernel's config (y 1, m 2, unset 0, a number as is)."""
    out: dict[str, int | None] = {}
    for n in names:
        if n == "LINUX_KERNEL_VERSION":
            nums = [int(x) for x in re.findall(r"\d+", k.release)[:3]] if k.release else []
            out[n] = (nums[0] << 16) + (nums[1] << 8) + min(nums[2], 255) \
                if len(nums) == 3 else None
        elif n.startswith("CONFIG_") and k.config is not None:
            v = k.config.get(n)
            out[n] = 0 if v is None or v == "n" else 1 if v == "y" else 2 if v == "m" else \
                int(v, 0) if re.fullmatch(r"-?(0x[0-9a-fA-F]+|\d+)", v) else None
        else:
            out[n] = None
    return out


def _arguments(k: KernelFacts, base: str, name: str) -> int | None:
    """How many arguments a BTF-typed hook has in this kernel: a tracepoint's (its
    btf_trace_ typedef, less the hidden first one), a function's; None when not found."""
    b = k.btf
    if base in ("tp_btf", "raw_tp", "raw_tracepoint"):
        found = [t for t in b.named("btf_trace_" + name) if t.kind == B.TYPEDEF]
        proto = b.resolve(found[0].size_or_type) if found else None
        proto = b.resolve(proto.size_or_type) if proto is not None and proto.kind == B.PTR \
            else None
        return len(proto.members) - 1 if proto is not None and proto.kind == B.FUNC_PROTO \
            else None
    funcs = [t for t in b.named(name) if t.kind == B.FUNC]
    proto = b.resolve(funcs[0].size_or_type) if funcs else None
    if proto is None or proto.kind != B.FUNC_PROTO:
        return None
    return len([m for m in proto.members if m.type != 0])  # a variadic '...' aside


def _context_arguments(section: str, target: str | None, reads: set[tuple[int, int]],
                       k: KernelFacts) -> Predicted | None:
    """A BTF-typed program that reads an argument its hook does not have on this kernel:
    the verifier refuses it (tp_btf, fentry: "func X doesn't have N-th argument"); a raw
    tracepoint program is refused at attach instead (EINVAL), when the kernel compares
    what it reads with the tracepoint's argument count."""
    base, _, hook_name = section.lstrip("?").partition("/")
    base = base.removesuffix(".s")
    hook_name = target or hook_name
    if not reads or not hook_name or base not in ("tp_btf", "raw_tp", "raw_tracepoint",
                                                  "fentry", "fexit", "fmod_ret"):
        return None
    nargs = _arguments(k, base, hook_name)
    if nargs is None:
        return None
    allowed = nargs + 1 if base == "fexit" else nargs  # fexit also reads the return value
    top = max(off // 8 for off, _ in reads)
    if top < allowed:
        return None
    what = "tracepoint" if base in ("tp_btf", "raw_tp", "raw_tracepoint") else "function"
    said = f"reads argument {top + 1} of {what} {hook_name}, which has {nargs} in this kernel"
    if base in ("raw_tp", "raw_tracepoint"):
        return Predicted("attach", f"{said}: attaching fails (EINVAL)")
    return Predicted("reject", f"{said}: the verifier refuses it")


def combine(predictions: Mapping[str, Predicted]) -> Predicted | None:
    """One prediction for several programs checked as one cell (a bundled program's
    object): the first refusal, else unknown if any is, else pass."""
    if not predictions:
        return None
    for p in predictions.values():
        if p.refusal:
            return p
    for p in predictions.values():
        if p.verdict == "unknown":
            return p
    return Predicted("pass")


def agrees(p: Predicted, status: str) -> bool | None:
    """Whether an observed status bears the prediction out; None when it cannot tell
    (unknown predicted, or no verdict observed: skip, setup, error, crash, timeout)."""
    if p.verdict == "unknown" or status not in ("pass", "reject", "fail"):
        return None
    return (status == "pass") == (p.verdict == "pass")
