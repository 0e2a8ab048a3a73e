"""bpftrace scripts as subjects: what a script declares about itself, and its task.

A script may carry a declaration (the harness's own keys, TOML) in a comment block that
opens with `ebpf-harness`, or in a file beside it named SCRIPT.toml (`opensnoop.bt.toml`):

    /* ebpf-harness
    trigger = ["/bin/cat", "/etc/hostname"]   # run in the guest once every probe is attached
    expect = 'hostname'                       # a regex the script's output must then match
    min_kernel = "5.5"                        # below it, a failure is expected
    feature = "kfunc probes (BPF trampolines)"
    requires = ["kfunc"]                      # features `bpftrace --info` must say yes to
    arch = ["x86_64"]                         # architectures it is meant for
    settle = 2                                # seconds to wait once attached (default 1)
    */

As bpftrace's own runtime tests gate theirs (REQUIRES_FEATURE, MIN_KERNEL, ARCH), a
script below what it declares still runs, and its failure there is the expected one (a
pass there says the declaration is wrong). Pure, apart from reading the files.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .tomlkeys import check_keys
from .versions import KernelVersion

KEYS = ("trigger", "expect", "min_kernel", "feature", "requires", "arch", "settle")
# the names bpftrace's ARCH uses, and Debian's, for one architecture
ARCH_NAMES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_BLOCK = re.compile(r"/\*\s*ebpf-harness\b[^\n]*\n(.*?)\*/", re.DOTALL)


@dataclass(frozen=True)
class ScriptDecl:
    trigger: tuple[str, ...] = ()
    expect: str = ""
    min_kernel: KernelVersion | None = None
    feature: str = ""
    requires: tuple[str, ...] = ()
    arch: tuple[str, ...] = ()  # Debian names
    settle: float = 1.0
    source: str = ""  # where it was declared, for messages

    def unmet(self, version: KernelVersion, arch: str) -> str | None:
        """Why this kernel is ruled out by the declaration, or None."""
        from .decision import below_minimum

        if self.arch and arch not in self.arch:
            return f"declared for {', '.join(self.arch)}; this kernel is {arch}"
        if self.min_kernel is not None and version.below_line(self.min_kernel):
            return below_minimum(self.feature or "a newer kernel", self.min_kernel.line,
                                 str(version))
        return None


def read_declaration(script: Path) -> ScriptDecl:
    """The script's declaration (its sidecar file first, else its comment block); an empty
    one when it has neither. Raises ConfigError naming the file and the key when wrong."""
    sidecar = Path(str(script) + ".toml")
    if sidecar.is_file():
        text, source = sidecar.read_text(), str(sidecar)
    else:
        try:
            found = _BLOCK.search(script.read_text(errors="replace"))
        except OSError as e:
            raise ConfigError(f"{script}: cannot read it ({e.strerror or e})") from e
        if found is None:
            return ScriptDecl(source=str(script))
        text, source = found.group(1), f"{script} (its ebpf-harness comment)"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from e
    return parse_declaration(data, source)


def parse_declaration(data: dict[str, Any], source: str) -> ScriptDecl:
    check_keys(data, KEYS, source)
    trigger = data.get("trigger", [])
    if isinstance(trigger, str) or not all(isinstance(a, str) for a in trigger):
        raise ConfigError(f"{source}: trigger must be an argv list, e.g. "
                          "[\"/bin/cat\", \"/etc/hostname\"] (no shell string)")
    expect = str(data.get("expect", ""))
    try:
        re.compile(expect)
    except re.error as e:
        raise ConfigError(f"{source}: expect is not a regular expression: {e}") from e
    arches = []
    for a in data.get("arch", []):
        if a not in ARCH_NAMES:
            raise ConfigError(f"{source}: arch {a!r}: give x86_64/amd64 or aarch64/arm64")
        arches.append(ARCH_NAMES[a])
    mk = data.get("min_kernel")
    return ScriptDecl(trigger=tuple(trigger), expect=expect,
                      min_kernel=KernelVersion.parse(str(mk)) if mk else None,
                      feature=str(data.get("feature", "")),
                      requires=tuple(str(r) for r in data.get("requires", [])),
                      arch=tuple(arches), settle=float(data.get("settle", 1.0)),
                      source=source)


def task_for(script: Path, decl: ScriptDecl, binary: str | None) -> dict[str, Any]:
    """The guest task that runs the script (guest/bpftrace.py)."""
    task: dict[str, Any] = {"kind": "bpftrace", "script": str(script.resolve()),
                            "cwd": str(script.resolve().parent), "settle": decl.settle}
    if binary:
        task["bpftrace"] = binary
        task["reads"] = [binary]
    if decl.requires:
        task["requires"] = list(decl.requires)
    if decl.trigger:
        task["trigger"] = list(decl.trigger)
    if decl.expect:
        task["expect"] = decl.expect
    return task


# What bpftrace's code generation (0.17) asks of the kernel for each construct, in the
# feature table's names (harness/data/kernel_features.toml): a probe type's program and
# attach type, a builtin's helper. BEGIN and END are uprobes on bpftrace itself.
PROBES: dict[str, tuple[tuple[str, str], ...]] = {
    "kprobe": (("prog_type", "kprobe"),), "kretprobe": (("prog_type", "kprobe"),),
    "uprobe": (("prog_type", "kprobe"),), "uretprobe": (("prog_type", "kprobe"),),
    "usdt": (("prog_type", "kprobe"),), "BEGIN": (("prog_type", "kprobe"),),
    "END": (("prog_type", "kprobe"),),
    "tracepoint": (("prog_type", "tracepoint"),),
    "rawtracepoint": (("prog_type", "raw_tracepoint"),),
    "kfunc": (("prog_type", "tracing"), ("attach_type", "trace_fentry")),
    "kretfunc": (("prog_type", "tracing"), ("attach_type", "trace_fexit")),
    "iter": (("prog_type", "tracing"), ("attach_type", "trace_iter")),
    "profile": (("prog_type", "perf_event"),), "interval": (("prog_type", "perf_event"),),
    "software": (("prog_type", "perf_event"),), "hardware": (("prog_type", "perf_event"),),
    "watchpoint": (("prog_type", "perf_event"),),
}
ALIASES = {"k": "kprobe", "kr": "kretprobe", "u": "uprobe", "ur": "uretprobe", "U": "usdt",
           "t": "tracepoint", "rt": "rawtracepoint", "f": "kfunc", "fr": "kretfunc",
           "fentry": "kfunc", "fexit": "kretfunc", "it": "iter", "p": "profile",
           "i": "interval", "s": "software", "h": "hardware", "w": "watchpoint",
           "asyncwatchpoint": "watchpoint"}
BUILTINS: dict[str, tuple[tuple[str, str], ...]] = {
    "pid": (("helper", "bpf_get_current_pid_tgid"),),
    "tid": (("helper", "bpf_get_current_pid_tgid"),),
    "uid": (("helper", "bpf_get_current_uid_gid"),),
    "gid": (("helper", "bpf_get_current_uid_gid"),),
    "comm": (("helper", "bpf_get_current_comm"),),
    "nsecs": (("helper", "bpf_ktime_get_ns"),), "elapsed": (("helper", "bpf_ktime_get_ns"),),
    "cpu": (("helper", "bpf_get_smp_processor_id"),),
    "curtask": (("helper", "bpf_get_current_task"),),
    "rand": (("helper", "bpf_get_prandom_u32"),),
    "cgroup": (("helper", "bpf_get_current_cgroup_id"),),
    "jiffies": (("helper", "bpf_jiffies64"),),
    "numaid": (("helper", "bpf_get_numa_node_id"),),
    "kstack": (("helper", "bpf_get_stackid"), ("map_type", "stack_trace")),
    "ustack": (("helper", "bpf_get_stackid"), ("map_type", "stack_trace")),
    "str(": (("helper", "bpf_probe_read_str"),),  # the _kernel/_user ones where present
    "printf(": (("helper", "bpf_perf_event_output"), ("map_type", "perf_event_array")),
    "signal(": (("helper", "bpf_send_signal"),),
    "override(": (("helper", "bpf_override_return"),),
    "path(": (("helper", "bpf_d_path"),),
    "skboutput(": (("helper", "bpf_skb_output"),),
    "strftime(": (("helper", "bpf_ktime_get_boot_ns"),),
    "@": (("map_type", "hash"), ("helper", "bpf_map_update_elem")),
    "delete(": (("helper", "bpf_map_delete_elem"),),
}
_COMMENTS = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)


def script_uses(text: str) -> tuple[list[str], list[str]]:
    """(probe types, builtins) a script uses, read from its text; aliases resolved."""
    probes: list[str] = []
    for block in probe_blocks(text):
        for spec, _ in block:
            kind = _kind(spec)
            if kind in PROBES and kind not in probes:
                probes.append(kind)
    code = _COMMENTS.sub(" ", text)
    builtins = [b for b in BUILTINS if _uses(code, b)]
    return probes, builtins


def _kind(spec: str) -> str:
    """An attach point's probe type, aliases resolved: 'k:vfs_read' -> 'kprobe'."""
    kind = spec.partition(":")[0]
    return ALIASES.get(kind, kind)


def _section(spec: str) -> str | None:
    """The libbpf section that hooks the same kernel place as one bpftrace attach point,
    or None when the kernel's facts cannot tell (uprobes, usdt, timers, perf events, a
    module's kfunc, globbed tracepoints and kfuncs, BEGIN/END)."""
    kind, rest = _kind(spec), spec.partition(":")[2]
    if not rest or any(c in rest for c in " ()\"'=;"):
        return None
    if kind in ("kprobe", "kretprobe") and ":" not in rest:
        return (f"{kind}.multi/{rest}" if any(c in rest for c in "*?[")
                else f"{kind}/{rest.split('+')[0]}")
    if kind in ("kfunc", "kretfunc") and "*" not in rest:
        module, _, fn = rest.rpartition(":")
        return f"{'fentry' if kind == 'kfunc' else 'fexit'}/{fn}" \
            if module in ("", "vmlinux") else None
    if kind == "tracepoint" and rest.count(":") == 1 and "*" not in rest:
        return "tp/" + rest.replace(":", "/")
    if kind == "rawtracepoint" and ":" not in rest and "*" not in rest:
        return f"raw_tp/{rest}"
    return None


def probe_blocks(text: str) -> list[list[tuple[str, str | None]]]:
    """Each probe block's attach points: [(as written, libbpf section or None)], BEGIN and
    END included; a probe's predicate and action, comments, preprocessor lines and
    top-level declarations left out. The one reader of a script's probes: its probe
    types (script_uses) and the kernel places a prediction holds against a kernel."""
    code = _COMMENTS.sub(" ", text)
    code = "\n".join(x for x in code.splitlines() if not x.lstrip().startswith("#"))
    blocks: list[list[tuple[str, str | None]]] = []
    head: list[str] = []
    depth = 0
    for c in code:
        if c == "{":
            if depth == 0:
                specs = []
                for tok in re.split(r"[\s,]+", "".join(head)):
                    if tok.startswith("/"):  # the predicate (a uprobe's path is inside one)
                        break
                    if ":" in tok or tok in PROBES:  # not a struct's name
                        specs.append(tok)
                if specs:
                    blocks.append([(x, _section(x)) for x in specs])
                head = []
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
            if depth == 0:
                head = []
        elif depth == 0 and c == ";":  # a top-level statement (a struct, a config)
            head = []
        elif depth == 0:
            head.append(c)
    return blocks


def _uses(code: str, builtin: str) -> bool:
    if builtin == "@":
        return "@" in code
    if builtin.endswith("("):  # a function: its name then a parenthesis
        return re.search(r"\b" + re.escape(builtin[:-1]) + r"\s*\(", code) is not None
    return re.search(r"\b" + re.escape(builtin) + r"\b(?!\s*\()", code) is not None


def script_needs(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """What each probe type and builtin of the script needs: [(construct, [(kind, name)])],
    kinds and names as the feature table has them."""
    probes, builtins = script_uses(text)
    return [(p, list(PROBES[p])) for p in probes] + \
        [(b.rstrip("(") + ("()" if b.endswith("(") else ""), list(BUILTINS[b]))
         for b in builtins]
