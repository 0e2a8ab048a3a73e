"""A small ctypes binding to the system's libbpf.so.1 (libbpf >= 1.0 semantics).

Stages are separate on purpose: open -> load (the verifier) -> attach, each raising its
own exception with libbpf's and the verifier's messages attached.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Callable, Iterator
from typing import NoReturn

_lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
_libc = ctypes.CDLL(None, use_errno=True)

c_void_p, c_char_p, c_int, c_size_t, c_uint = (
    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint,
)


def _fn(name: str, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


PRINT_FN = ctypes.CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)
SAMPLE_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)

set_print = _fn("libbpf_set_print", c_void_p, PRINT_FN)
obj_open_file = _fn("bpf_object__open_file", c_void_p, c_char_p, c_void_p)
obj_load = _fn("bpf_object__load", c_int, c_void_p)
obj_close = _fn("bpf_object__close", None, c_void_p)
next_program = _fn("bpf_object__next_program", c_void_p, c_void_p, c_void_p)
next_map = _fn("bpf_object__next_map", c_void_p, c_void_p, c_void_p)
prog_name = _fn("bpf_program__name", c_char_p, c_void_p)
prog_section = _fn("bpf_program__section_name", c_char_p, c_void_p)
prog_type = _fn("bpf_program__type", c_int, c_void_p)
prog_set_autoload = _fn("bpf_program__set_autoload", c_int, c_void_p, ctypes.c_bool)
prog_set_log_level = _fn("bpf_program__set_log_level", c_int, c_void_p, ctypes.c_uint32)
prog_set_log_buf = _fn("bpf_program__set_log_buf", c_int, c_void_p, c_void_p, c_size_t)
prog_fd = _fn("bpf_program__fd", c_int, c_void_p)
prog_insn_cnt = _fn("bpf_program__insn_cnt", c_size_t, c_void_p)
prog_attach = _fn("bpf_program__attach", c_void_p, c_void_p)
prog_attach_xdp = _fn("bpf_program__attach_xdp", c_void_p, c_void_p, c_int)
prog_attach_cgroup = _fn("bpf_program__attach_cgroup", c_void_p, c_void_p, c_int)
prog_attach_netns = _fn("bpf_program__attach_netns", c_void_p, c_void_p, c_int)
link_create = _fn("bpf_link_create", c_int, c_int, c_int, c_int, c_void_p)
link_destroy = _fn("bpf_link__destroy", c_int, c_void_p)
map_name = _fn("bpf_map__name", c_char_p, c_void_p)
map_fd = _fn("bpf_map__fd", c_int, c_void_p)
map_type = _fn("bpf_map__type", c_int, c_void_p)
map_key_size = _fn("bpf_map__key_size", ctypes.c_uint32, c_void_p)
map_value_size = _fn("bpf_map__value_size", ctypes.c_uint32, c_void_p)
map_max_entries = _fn("bpf_map__max_entries", ctypes.c_uint32, c_void_p)
map_set_value_size = _fn("bpf_map__set_value_size", c_int, c_void_p, ctypes.c_uint32)
map_set_max_entries = _fn("bpf_map__set_max_entries", c_int, c_void_p, ctypes.c_uint32)
map_set_key_size = _fn("bpf_map__set_key_size", c_int, c_void_p, ctypes.c_uint32)
map_initial_value = _fn("bpf_map__initial_value", c_void_p, c_void_p, ctypes.POINTER(c_size_t))
prog_set_attach_target = _fn("bpf_program__set_attach_target", c_int, c_void_p, c_int, c_char_p)
prog_attach_kprobe = _fn("bpf_program__attach_kprobe", c_void_p, c_void_p, ctypes.c_bool, c_char_p)
prog_attach_tracepoint = _fn("bpf_program__attach_tracepoint", c_void_p, c_void_p, c_char_p,
                             c_char_p)
prog_attach_raw_tp = _fn("bpf_program__attach_raw_tracepoint", c_void_p, c_void_p, c_char_p)
prog_attach_uprobe_opts = _fn("bpf_program__attach_uprobe_opts", c_void_p, c_void_p, c_int,
                              c_char_p, c_size_t, c_void_p)
prog_attach_usdt = _fn("bpf_program__attach_usdt", c_void_p, c_void_p, c_int, c_char_p,
                       c_char_p, c_char_p, c_void_p)
prog_attach_perf_event = _fn("bpf_program__attach_perf_event", c_void_p, c_void_p, c_int)
# the set-up attributes a map takes before load, by their set-up file names
MAP_SETTERS = {"max_entries": map_set_max_entries, "value_size": map_set_value_size,
               "key_size": map_set_key_size}
map_lookup = _fn("bpf_map_lookup_elem", c_int, c_int, c_void_p, c_void_p)
map_update = _fn("bpf_map_update_elem", c_int, c_int, c_void_p, c_void_p, ctypes.c_uint64)
map_delete = _fn("bpf_map_delete_elem", c_int, c_int, c_void_p)
map_next_key = _fn("bpf_map_get_next_key", c_int, c_int, c_void_p, c_void_p)
ringbuf_new = _fn("ring_buffer__new", c_void_p, c_int, SAMPLE_FN, c_void_p, c_void_p)
ringbuf_poll = _fn("ring_buffer__poll", c_int, c_void_p, c_int)
ringbuf_free = _fn("ring_buffer__free", None, c_void_p)
obj_get_info = _fn("bpf_obj_get_info_by_fd", c_int, c_int, c_void_p, ctypes.POINTER(ctypes.c_uint32))
probe_prog_type = _fn("libbpf_probe_bpf_prog_type", c_int, c_int, c_void_p)
probe_map_type = _fn("libbpf_probe_bpf_map_type", c_int, c_int, c_void_p)
probe_helper = _fn("libbpf_probe_bpf_helper", c_int, c_int, c_int, c_void_p)
prog_type_str = _fn("libbpf_bpf_prog_type_str", c_char_p, c_int)
map_type_str = _fn("libbpf_bpf_map_type_str", c_char_p, c_int)


class UprobeOpts(ctypes.Structure):
    """struct bpf_uprobe_opts (libbpf 0.8+, with func_name): a uprobe by symbol name."""

    _fields_ = [("sz", c_size_t), ("ref_ctr_offset", c_size_t), ("bpf_cookie", ctypes.c_uint64),
                ("retprobe", ctypes.c_bool), ("func_name", c_char_p)]


class TcHook(ctypes.Structure):
    """struct bpf_tc_hook (libbpf 0.4+): where on a device a tc program sits."""

    _fields_ = [("sz", c_size_t), ("ifindex", c_int), ("attach_point", c_int),
                ("parent", ctypes.c_uint32)]


class TcOpts(ctypes.Structure):
    """struct bpf_tc_opts (libbpf 0.4+): one tc filter, its handle and priority."""

    _fields_ = [("sz", c_size_t), ("prog_fd", c_int), ("flags", ctypes.c_uint32),
                ("prog_id", ctypes.c_uint32), ("handle", ctypes.c_uint32),
                ("priority", ctypes.c_uint32)]


tc_hook_create = _fn("bpf_tc_hook_create", c_int, ctypes.POINTER(TcHook))
tc_hook_destroy = _fn("bpf_tc_hook_destroy", c_int, ctypes.POINTER(TcHook))
tc_attach = _fn("bpf_tc_attach", c_int, ctypes.POINTER(TcHook), ctypes.POINTER(TcOpts))
tc_detach = _fn("bpf_tc_detach", c_int, ctypes.POINTER(TcHook), ctypes.POINTER(TcOpts))
_major = _fn("libbpf_major_version", ctypes.c_uint32)
_minor = _fn("libbpf_minor_version", ctypes.c_uint32)
_libc.vsnprintf.restype = c_int
_libc.vsnprintf.argtypes = [c_char_p, c_size_t, c_char_p, c_void_p]

# struct bpf_prog_info: offsetof(verified_insns) in the UAPI (5.16+), and the size
# the kernel accepts from older userspace (it zero-fills what it does not know).
PROG_INFO_SIZE = 232
PROG_INFO_VERIFIED_INSNS = 216
PROG_INFO_TYPE = 0
PROG_INFO_JITED_LEN = 16
PROG_INFO_XLATED_LEN = 20

# enum bpf_tc_attach_point in libbpf.h
BPF_TC_INGRESS, BPF_TC_EGRESS = 1, 2

# enum bpf_attach_type values that libbpf 1.1.2's headers and wrappers predate, passed
# raw to bpf_link_create (the kernel rejects them with EINVAL where it lacks them):
# e420bed02507 "bpf: Add fd-based tcx multi-prog infra with link support" (6.6)
BPF_TCX_INGRESS, BPF_TCX_EGRESS = 46, 47
# 35dfaad7188c "netkit, bpf: Add bpf programmable net device" (6.7)
BPF_NETKIT_PRIMARY, BPF_NETKIT_PEER = 54, 55


def version() -> str:
    return f"{_major()}.{_minor()}"


class Messages:
    """Collects what libbpf prints (CO-RE failures, map creation errors, attach errors)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

        def _cb(level: int, fmt: bytes, args: int) -> int:
            buf = ctypes.create_string_buffer(4096)
            _libc.vsnprintf(buf, len(buf), fmt, args)
            text = buf.value.decode(errors="replace").rstrip("\n")
            if level <= 1:  # warnings and info; debug (2) is too chatty
                self.lines.extend(text.splitlines())
            return 0

        self._cb = PRINT_FN(_cb)
        set_print(self._cb)

    def take(self) -> list[str]:
        out, self.lines = self.lines, []
        return out


MESSAGES: Messages | None = None


def messages() -> Messages:
    global MESSAGES
    if MESSAGES is None:
        MESSAGES = Messages()
    return MESSAGES


class StageError(Exception):
    def __init__(self, stage: str, err: int, detail: str, log: str = "") -> None:
        super().__init__(detail)
        self.stage, self.err, self.detail, self.log = stage, err, detail, log


def _errno_text(err: int) -> str:
    err = abs(err)
    return f"{os.strerror(err)} ({err})" if err else "unknown error"


class Map:
    def __init__(self, ptr: int) -> None:
        self._ptr = ptr
        self.name = map_name(ptr).decode()
        self.type = map_type(ptr)

    @property
    def fd(self) -> int:
        return map_fd(self._ptr)

    @property
    def key_size(self) -> int:
        return map_key_size(self._ptr)

    @property
    def value_size(self) -> int:
        return map_value_size(self._ptr)

    def _vsize(self, percpu: bool) -> int:
        if not percpu:
            return self.value_size
        return ((self.value_size + 7) // 8 * 8) * possible_cpus()

    def lookup(self, key: bytes, percpu: bool = False) -> bytes | None:
        val = ctypes.create_string_buffer(self._vsize(percpu))
        if map_lookup(self.fd, key, val) != 0:
            return None
        return val.raw

    def lookup_percpu(self, key: bytes) -> list[bytes]:
        raw = self.lookup(key, percpu=True)
        if raw is None:
            return []
        step = (self.value_size + 7) // 8 * 8
        return [raw[i : i + self.value_size] for i in range(0, len(raw), step)]

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        rc = map_update(self.fd, key, value, flags)
        if rc != 0:
            raise OSError(-rc, f"update of map {self.name}: {_errno_text(rc)}")

    def delete(self, key: bytes) -> bool:
        return map_delete(self.fd, key) == 0

    def keys(self) -> Iterator[bytes]:
        cur = None
        nxt = ctypes.create_string_buffer(self.key_size)
        while map_next_key(self.fd, cur, nxt) == 0:
            yield nxt.raw
            cur = ctypes.create_string_buffer(nxt.raw, self.key_size)

    def items(self, percpu: bool = False) -> list[tuple[bytes, bytes]]:
        out = []
        for k in list(self.keys()):
            v = self.lookup(k, percpu=percpu)
            if v is not None:
                out.append((k, v))
        return out

    def clear(self) -> None:
        for k in list(self.keys()):
            self.delete(k)


class RingBuffer:
    def __init__(self, m: Map) -> None:
        self.events: list[bytes] = []

        def _sample(ctx: int, data: int, size: int) -> int:
            self.events.append(ctypes.string_at(data, size))
            return 0

        self._cb = SAMPLE_FN(_sample)
        self._rb = ringbuf_new(m.fd, self._cb, None, None)
        if not self._rb:
            err = ctypes.get_errno()
            raise OSError(err, f"ring buffer on map {m.name}: {_errno_text(err)}")

    def poll(self, timeout: float = 1.0) -> list[bytes]:
        ringbuf_poll(self._rb, int(timeout * 1000))
        out, self.events = self.events, []
        return out

    def close(self) -> None:
        if self._rb:
            ringbuf_free(self._rb)
            self._rb = None


class Program:
    def __init__(self, ptr: int) -> None:
        self._ptr = ptr
        self.name = prog_name(ptr).decode()
        self.section = prog_section(ptr).decode()
        self.log = ""
        self._logbuf: ctypes.Array | None = None
        self.links: list[int] = []
        # attachments that are not a libbpf bpf_link: raw link fds, tc filters
        self._undo: list[Callable[[], object]] = []

    @property
    def fd(self) -> int:
        return prog_fd(self._ptr)

    @property
    def type(self) -> int:
        return prog_type(self._ptr)

    def type_name(self) -> str:
        s = prog_type_str(self.type)
        return s.decode() if s else str(self.type)

    def insn_count(self) -> int:
        return prog_insn_cnt(self._ptr)

    def set_log(self, level: int, size: int) -> None:
        self._logbuf = ctypes.create_string_buffer(size)
        prog_set_log_buf(self._ptr, self._logbuf, size)
        prog_set_log_level(self._ptr, level)

    def read_log(self) -> str:
        if self._logbuf is None:
            return ""
        return self._logbuf.value.decode(errors="replace")

    def _info_u32(self, offset: int) -> int | None:
        """One __u32 of this program's bpf_prog_info; None where the kernel has no such field."""
        info = ctypes.create_string_buffer(PROG_INFO_SIZE)
        ln = ctypes.c_uint32(PROG_INFO_SIZE)
        if obj_get_info(self.fd, info, ctypes.byref(ln)) != 0 or ln.value < offset + 4:
            return None
        return int.from_bytes(info.raw[offset : offset + 4], "little")

    def verified_insns(self) -> int | None:
        """From bpf_prog_info (kernel 5.16+); None where the kernel does not report it."""
        return self._info_u32(PROG_INFO_VERIFIED_INSNS) or None

    def sizes(self) -> tuple[int | None, int | None]:
        """(translated, JITed) program size in bytes, from bpf_prog_info; JITed is None when
        the kernel interprets the program."""
        return (self._info_u32(PROG_INFO_XLATED_LEN) or None,
                self._info_u32(PROG_INFO_JITED_LEN) or None)

    def _link(self, ptr: int | None, what: str) -> int:
        if not ptr:
            err = ctypes.get_errno()
            msgs = messages().take()
            raise StageError("attach", err, f"{what}: {_errno_text(err)}" + (
                f"; libbpf: {msgs[-1].strip()}" if msgs else ""))
        self.links.append(ptr)
        return ptr

    def attach(self) -> int:
        """Auto-attach by section name (tracepoints, kprobes, fentry, lsm, ...)."""
        return self._link(prog_attach(self._ptr), f"attach {self.section}")

    def set_target(self, target: str) -> None:
        """Before load: the function or event a BTF-attached program (fentry, fexit,
        fmod_ret, lsm, tp_btf) is verified against and attached to."""
        rc = prog_set_attach_target(self._ptr, 0, target.encode())
        if rc != 0:
            raise StageError("open", abs(rc), f"set attach target {target!r} on {self.name}: "
                             f"{_errno_text(rc)}")

    def attach_to(self, target: str) -> int | list[int]:
        """Attach to the target a loader would give: its form follows the section (see
        harness/bpfobj/setup.py). BTF-attached programs got theirs before load."""
        base = self.section.lstrip("?").partition("/")[0]
        what = f"attach {base} to {target}"
        if base in ("kprobe", "kretprobe") and target.startswith("/") and ":" in target:
            base = "uretprobe" if base == "kretprobe" else "uprobe"  # a kprobe program on a
            # uprobe, as gethostlatency attaches its kprobe/handle_entry to libc
        if base in ("kprobe", "kretprobe"):
            return self._link(prog_attach_kprobe(self._ptr, base == "kretprobe", target.encode()),
                              what)
        if base in ("tp", "tracepoint"):
            cat, _, name = target.partition("/")
            return self._link(prog_attach_tracepoint(self._ptr, cat.encode(), name.encode()), what)
        if base in ("raw_tp", "raw_tracepoint"):
            return self._link(prog_attach_raw_tp(self._ptr, target.encode()), what)
        if base.startswith(("uprobe", "uretprobe")):
            binary, _, sym = target.rpartition(":")
            opts = UprobeOpts(sz=ctypes.sizeof(UprobeOpts), retprobe=base.startswith("uretprobe"),
                              func_name=sym.encode())
            return self._link(prog_attach_uprobe_opts(self._ptr, -1, binary.encode(), 0,
                                                      ctypes.byref(opts)), what)
        if base == "usdt":
            binary, provider, name = target.rsplit(":", 2)
            return self._link(prog_attach_usdt(self._ptr, -1, binary.encode(), provider.encode(),
                                               name.encode(), None), what)
        if base == "perf_event":
            return [self._link(prog_attach_perf_event(self._ptr, fd), f"{what} on CPU {cpu}")
                    for cpu, fd in _perf_events(target)]
        return self.attach()  # fentry, fexit, lsm, tp_btf: the target was set before load

    def attach_xdp(self, ifindex: int) -> int:
        return self._link(prog_attach_xdp(self._ptr, ifindex), f"attach xdp to ifindex {ifindex}")

    def attach_cgroup(self, cgroup_fd: int) -> int:
        return self._link(prog_attach_cgroup(self._ptr, cgroup_fd), "attach to cgroup")

    def attach_netns(self, netns_fd: int) -> int:
        return self._link(prog_attach_netns(self._ptr, netns_fd), "attach to netns")

    def attach_tc(self, ifindex: int, ingress: bool = True) -> tuple[int, int]:
        """A direct-action filter on the device's clsact qdisc (created if missing).

        Returns the filter's (handle, priority). detach() removes the filter, and the
        clsact qdisc too when this call created it.
        """
        where = f"tc {'ingress' if ingress else 'egress'} of ifindex {ifindex}"
        hook = TcHook(sz=ctypes.sizeof(TcHook), ifindex=ifindex,
                      attach_point=BPF_TC_INGRESS if ingress else BPF_TC_EGRESS)
        messages().take()
        rc = tc_hook_create(ctypes.byref(hook))
        if rc not in (0, -errno.EEXIST):
            self._raise_attach(rc, f"attach {where}: cannot create its clsact qdisc")
        created = rc == 0
        opts = TcOpts(sz=ctypes.sizeof(TcOpts), prog_fd=self.fd)
        rc = tc_attach(ctypes.byref(hook), ctypes.byref(opts))
        if rc != 0:
            if created:
                self._tc_destroy(ifindex)
            self._raise_attach(rc, f"attach {where}")
        handle, priority = opts.handle, opts.priority

        # an ifindex means something only in its network namespace: detach in this one,
        # wherever the thread is by then (checks move between namespaces)
        ns_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

        def undo() -> None:
            try:
                with _netns(ns_fd):
                    # bpf_tc_detach wants the filter's handle and priority, nothing else
                    gone = TcOpts(sz=ctypes.sizeof(TcOpts), handle=handle, priority=priority)
                    tc_detach(ctypes.byref(hook), ctypes.byref(gone))
                    if created:
                        self._tc_destroy(ifindex)
            finally:
                os.close(ns_fd)

        self._undo.append(undo)
        return handle, priority

    @staticmethod
    def _tc_destroy(ifindex: int) -> None:
        hook = TcHook(sz=ctypes.sizeof(TcHook), ifindex=ifindex,
                      attach_point=BPF_TC_INGRESS | BPF_TC_EGRESS)
        tc_hook_destroy(ctypes.byref(hook))  # the whole clsact qdisc

    def attach_tcx(self, ifindex: int, ingress: bool = True) -> int:
        """A tcx link (6.6) on the device's ingress or egress; returns the link fd."""
        kind = BPF_TCX_INGRESS if ingress else BPF_TCX_EGRESS
        return self._link_fd(ifindex, kind,
                             f"attach tcx {'ingress' if ingress else 'egress'} to ifindex {ifindex}")

    def attach_netkit(self, ifindex: int, peer: bool = False) -> int:
        """A netkit link (6.7); ifindex is the primary device, peer picks its peer's side.

        Returns the link fd.
        """
        kind = BPF_NETKIT_PEER if peer else BPF_NETKIT_PRIMARY
        return self._link_fd(ifindex, kind,
                             f"attach netkit {'peer' if peer else 'primary'} to ifindex {ifindex}")

    def _link_fd(self, target: int, attach_type: int, what: str) -> int:
        messages().take()
        fd = link_create(self.fd, target, attach_type, None)
        if fd < 0:
            self._raise_attach(fd, what)
        self._undo.append(lambda: os.close(fd))  # the last reference: detaches
        return fd

    @staticmethod
    def _raise_attach(rc: int, what: str) -> NoReturn:
        msgs = messages().take()
        raise StageError("attach", abs(rc), f"{what}: {_errno_text(rc)}" + (
            f"; libbpf: {msgs[-1].strip()}" if msgs else ""))

    def detach(self) -> None:
        for link in self.links:
            link_destroy(link)
        self.links = []
        for undo in reversed(self._undo):
            undo()  # where the device is already gone, so is the attachment: no error
        self._undo = []


# PERF_TYPE_SOFTWARE configs a set-up file may name for a perf_event program
PERF_SOFTWARE = {"cpu-clock": 0, "task-clock": 1, "page-faults": 2, "context-switches": 3,
                 "cpu-migrations": 4}
_libc.syscall.restype = ctypes.c_long
SYS_PERF_EVENT_OPEN = 298  # x86_64
PERF_FLAG_FD_CLOEXEC = 8


def _perf_events(name: str, freq: int = 49) -> list[tuple[int, int]]:
    """A sampling software event on every online CPU: [(cpu, fd)]. Each fd is handed to
    a bpf_link, whose destruction closes it."""
    attr = ctypes.create_string_buffer(64)  # PERF_ATTR_SIZE_VER0
    ctypes.memmove(attr, (1).to_bytes(4, "little") + (64).to_bytes(4, "little")
                   + PERF_SOFTWARE[name].to_bytes(8, "little") + freq.to_bytes(8, "little"), 24)
    ctypes.memmove(ctypes.byref(attr, 40), (1 << 10).to_bytes(8, "little"), 8)  # freq
    out: list[tuple[int, int]] = []
    for cpu in online_cpus():
        fd = _libc.syscall(SYS_PERF_EVENT_OPEN, attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            for _, f in out:
                os.close(f)
            raise StageError("attach", err, f"perf_event_open {name} on CPU {cpu}: "
                             f"{_errno_text(err)}")
        out.append((cpu, int(fd)))
    return out


def _cpu_list(text: str) -> list[int]:
    out: list[int] = []
    for part in text.strip().split(","):
        if part:
            a, _, b = part.partition("-")
            out += range(int(a), int(b or a) + 1)
    return out


def online_cpus() -> list[int]:
    return _cpu_list(open("/sys/devices/system/cpu/online").read())


CLONE_NEWNET = 0x40000000
_libc.setns.argtypes = [c_int, c_int]
_libc.setns.restype = c_int


@contextlib.contextmanager
def _netns(ns_fd: int) -> Iterator[None]:
    """Run the block in the network namespace ns_fd names, then return to this thread's own."""
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        a, b = os.fstat(here), os.fstat(ns_fd)
        move = (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino)
        if move and _libc.setns(ns_fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns to the attach-time network namespace: {_errno_text(err)}")
        try:
            yield
        finally:
            if move:
                _libc.setns(here, CLONE_NEWNET)
    finally:
        os.close(here)


# enum bpf_map_type values used by default_sizes
BPF_MAP_TYPE_STACK_TRACE, BPF_MAP_TYPE_RINGBUF = 7, 27
_SIZED_BY_LOADER = {1, 2, 5, 6, 9, 10}  # hash, array, per-CPU hash/array, LRU (per-CPU) hash
STACK_VALUE_SIZE = 127 * 8  # PERF_MAX_STACK_DEPTH frames of u64, as stack-trace tools use
RINGBUF_SIZE = 256 << 10
LOADER_MAX_ENTRIES = 10240  # the default libbpf-tools give their hash maps


def default_sizes(mtype: int, value_size: int, max_entries: int) -> list[tuple[str, int]]:
    """What a loader would set on a map the object leaves unsized (libbpf's conventions):
    a stack-trace map's value size, a ring buffer's size, a hash or array map's
    max_entries. Pure."""
    out = []
    if mtype == BPF_MAP_TYPE_STACK_TRACE and value_size == 0:
        out.append(("value_size", STACK_VALUE_SIZE))
    if max_entries == 0:
        if mtype == BPF_MAP_TYPE_RINGBUF:
            out.append(("max_entries", RINGBUF_SIZE))
        elif mtype in _SIZED_BY_LOADER or mtype == BPF_MAP_TYPE_STACK_TRACE:
            out.append(("max_entries", LOADER_MAX_ENTRIES))
    return out


class BpfObject:
    """One .bpf.o. Use as a context manager; everything is released on exit."""

    def __init__(self, path: str) -> None:
        self.path = path
        messages().take()
        ptr = obj_open_file(path.encode(), None)
        if not ptr:
            err = ctypes.get_errno()
            raise StageError("open", err, f"libbpf cannot open {path}: {_errno_text(err)}; "
                             + " ".join(m.strip() for m in messages().take()[-2:]))
        self._ptr = ptr
        self.programs: dict[str, Program] = {}
        p = next_program(ptr, None)
        while p:
            prog = Program(p)
            self.programs[prog.name] = prog
            p = next_program(ptr, p)
        self.maps: dict[str, Map] = {}
        self._rings: list[RingBuffer] = []

    def loader_defaults(self) -> list[str]:
        """Give maps declared without a size the size a loader would give them before
        load (see default_sizes); returns what was set, for the report."""
        notes = []
        for m in self._map_ptrs():
            for attr, value in default_sizes(map_type(m), map_value_size(m), map_max_entries(m)):
                if MAP_SETTERS[attr](m, value) == 0:
                    notes.append(f"map '{map_name(m).decode()}' {attr}={value}")
        return notes

    def _map_ptrs(self) -> Iterator[int]:
        """Every map of the object, as libbpf's struct bpf_map pointers."""
        m = next_map(self._ptr, None)
        while m:
            yield m
            m = next_map(self._ptr, m)

    def apply_setup(self, setup: dict) -> list[str]:
        """What a loader does before load, from the set-up file (resolved on the host):
        map sizes, variable values, attach targets of BTF-attached programs. Returns
        what was set, for the report."""
        notes = []
        maps = {map_name(m).decode(): m for m in self._map_ptrs()}
        for name, attrs in setup.get("maps", {}).items():
            if name not in maps:
                raise StageError("open", errno.ENOENT, f"set-up: no map '{name}' in the object")
            for attr, value in attrs.items():
                rc = MAP_SETTERS[attr](maps[name], value)
                if rc != 0:
                    raise StageError("open", abs(rc), f"set-up: map '{name}' {attr}={value}: "
                                     f"{_errno_text(rc)}")
                notes.append(f"map '{name}' {attr}={value}")
        for d in setup.get("data", []):
            self._set_variable(maps, d)
            notes.append(f"{d['name']}=0x{d['hex']}")
        for name, p in setup.get("programs", {}).items():
            prog = self.programs.get(name)
            if prog is not None and p.get("target") and _btf_attached(prog.section):
                prog.set_target(p["target"])
        return notes

    @staticmethod
    def _set_variable(maps: dict[str, int], d: dict) -> None:
        section, raw = d["section"], bytes.fromhex(d["hex"])
        m = next((p for n, p in maps.items() if n.endswith(section)), None)
        size = c_size_t(0)
        ptr = map_initial_value(m, ctypes.byref(size)) if m else None
        if not ptr or d["offset"] + len(raw) > size.value:
            raise StageError("open", errno.ENOENT, f"set-up: cannot set variable '{d['name']}': "
                             f"no {section} data of {d['offset'] + len(raw)} bytes in the object")
        ctypes.memmove(ptr + d["offset"], raw, len(raw))

    def only(self, name: str) -> None:
        """Load only this program (isolation: one program's verdict per load)."""
        for n, prog in self.programs.items():
            prog_set_autoload(prog._ptr, n == name)

    def load(self) -> None:
        messages().take()
        rc = obj_load(self._ptr)
        if rc != 0:
            msgs = messages().take()
            raise StageError("load", rc, "; ".join(m.strip() for m in msgs[-3:]) or _errno_text(rc))
        for m in self._map_ptrs():
            mp = Map(m)
            self.maps[mp.name] = mp

    def ringbuf(self, map_name: str) -> RingBuffer:
        rb = RingBuffer(self.maps[map_name])
        self._rings.append(rb)
        return rb

    def close(self) -> None:
        for rb in self._rings:
            rb.close()
        for prog in self.programs.values():
            prog.detach()
        if self._ptr:
            obj_close(self._ptr)
            self._ptr = None

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_NCPU: int | None = None


def _btf_attached(section: str) -> bool:
    """Programs whose target is fixed at load, from the kernel's BTF."""
    base = section.lstrip("?").partition("/")[0]
    return base in ("fentry", "fexit", "fmod_ret", "lsm", "tp_btf", "fentry.s", "fexit.s",
                    "fmod_ret.s", "lsm.s", "iter", "iter.s")


def possible_cpus() -> int:
    global _NCPU
    if _NCPU is None:
        _NCPU = len(_cpu_list(open("/sys/devices/system/cpu/possible").read()))
    return _NCPU


def probe_features(helper_prog_types: tuple[str, ...] = ("kprobe", "xdp")) -> dict:
    """Which program types, map types and helpers this kernel has (libbpf's probes)."""
    prog_types, map_types = {}, {}
    names: dict[str, int] = {}
    for i in range(1, 128):
        s = prog_type_str(i)
        if not s:
            break
        prog_types[s.decode()] = probe_prog_type(i, None) == 1
        names[s.decode()] = i
    for i in range(1, 128):
        s = map_type_str(i)
        if not s:
            break
        map_types[s.decode()] = probe_map_type(i, None) == 1
    helper_names = _helper_names()
    helpers: dict[str, list[str]] = {}
    for pt in helper_prog_types:
        if pt not in names or not prog_types.get(pt):
            continue
        got = []
        for hid, hname in enumerate(helper_names):
            if hid and probe_helper(names[pt], hid, None) == 1:
                got.append(hname)
        helpers[pt] = got
    return {"prog_types": prog_types, "map_types": map_types, "helpers": helpers}


def _helper_names(header: str = "/usr/include/linux/bpf.h") -> list[str]:
    import re

    try:
        text = open(header).read()
    except OSError:
        return []
    start = text.find("#define ___BPF_FUNC_MAPPER")
    if start < 0:
        start = text.find("#define __BPF_FUNC_MAPPER")
    end = text.find("#define __BPF_ENUM_FN", start)
    return re.findall(r"FN\((\w+)", text[start:end])
