"""Small results models for the report tests, built in code (no VM)."""

from __future__ import annotations

from harness.results import KernelInfo, Report, Result, VerifierInfo


def kernels(pinned: bool = False, builds: dict[str, str] | None = None) -> list[KernelInfo]:
    builds = builds or {}
    out = []
    for kid, v in [("6.12", "6.12.94"), ("5.10", "5.10.223"), ("7.2", "7.2.13"), ("6.1", "6.1.150")]:
        v = builds.get(kid, v)
        out.append(KernelInfo(kid, f"{v}+deb-amd64", v, origin=f"debian:test {v}-1", accel="tcg",
                              boot_seconds=7.5, vm_seconds=40.0, pinned=pinned))
    return out


def vi(processed: int, **kw: int) -> VerifierInfo:
    return VerifierInfo(insns_processed=processed, states=3, peak_states=3, max_states_per_insn=1,
                        verification_usec=120, stack_depth=16, insns=20, xlated_bytes=160,
                        jited_bytes=110, summary="", log="processed ...", **kw)


def sample() -> Report:
    rs = [
        Result("observability/loop", "5.10", "skip", "load", "needs bpf_loop (>= 5.17)",
               expected="skip"),
        Result("observability/loop", "6.1", "pass", "behavior", verifier=vi(10)),
        Result("observability/loop", "6.12", "reject", "load", "verifier: invalid mem access",
               verifier=VerifierInfo(summary="R1 invalid mem access 'scalar' (12 lines omitted)",
                                     log="0: (b7) r1 = 0\nR1 invalid mem access 'scalar'\n")),
        Result("observability/loop", "7.2", "pass", "behavior", verifier=vi(12)),
        Result("security/lsm <x>", "5.10", "pass", "behavior", verifier=vi(100)),
        Result("security/lsm <x>", "6.1", "pass", "behavior", verifier=vi(100)),
        Result("security/lsm <x>", "6.12", "crash", "run", "kernel crashed: Oops",
               console="BUG: kernel NULL pointer dereference"),
        Result("security/lsm <x>", "7.2", "pass", "behavior", verifier=vi(90)),
    ]
    return Report(kernels=kernels(), results=rs, loaders={"libbpf": "1.1", "clang": "14.0.6"},
                  command=["ebpf-harness", "matrix"])
