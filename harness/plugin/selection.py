"""Which kernels a test runs on, and whether it is skipped there. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from ..versions import KernelVersion, VersionConstraint, matches_all


@dataclass(frozen=True)
class KernelRef:
    """A kernel as the plugin sees it at collection time."""

    id: str
    release: str
    version: KernelVersion


def select(kernels: list[KernelRef], ranges: tuple[str, ...]) -> list[KernelRef]:
    """Kernels matching every range of a @pytest.mark.kernels(...) marker."""
    cons = [VersionConstraint.parse(r) for r in ranges]
    return [k for k in kernels if matches_all(cons, k.version)]


@dataclass(frozen=True)
class SkipDecision:
    skip: bool
    reason: str = ""


def min_kernel_decision(kernel: KernelRef, minimum: str, feature: str | None) -> SkipDecision:
    """Below the minimum (compared on major.minor): skip naming the feature; else run."""
    need = KernelVersion.parse(minimum)
    if kernel.version.below_line(need):
        what = feature or "a newer kernel"
        return SkipDecision(True, f"needs {what} (>= {minimum}); kernel {kernel.id} is "
                                  f"{kernel.release}")
    return SkipDecision(False)
