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


def select(kernels: list[KernelRef], ranges: tuple[str, ...],
           arch: str | None = None) -> list[KernelRef]:
    """Kernels matching every range of a @pytest.mark.kernels(...) marker; a range may
    hold several, comma-separated: kernels(">=6.1,<7.0") is kernels(">=6.1", "<7.0").
    arch ("arm64", "amd64,arm64"): only columns of these architectures (read from each
    kernel's release: 6.12.117+deb13-arm64)."""
    from ..kernels.catalog import parse_arches, release_flavour

    cons = [VersionConstraint.parse(r) for arg in ranges for r in arg.split(",") if r.strip()]
    arches = parse_arches(arch) if arch else None
    return [k for k in kernels if matches_all(cons, k.version)
            and (arches is None or release_flavour(k.release)[0] in arches)]


def no_match_reason(kernels: list[KernelRef], ranges: tuple[str, ...],
                    arch: str | None = None) -> str:
    """Why a test marked kernels(*ranges) runs on none of these kernels: the kernels asked
    for and the range, for its skip."""
    asked = ", ".join(k.id for k in kernels) or "none"
    what = ",".join(ranges) + (f" on {arch}" if arch else "")
    return f"no kernel of {asked} matches {what.strip()}"


@dataclass(frozen=True)
class SkipDecision:
    skip: bool
    reason: str = ""


def min_kernel_decision(kernel: KernelRef, minimum: str, feature: str | None) -> SkipDecision:
    """Below the minimum (compared on major.minor): skip naming the feature; else run."""
    need = KernelVersion.parse(minimum)
    if kernel.version.below_line(need):
        from ..decision import below_minimum

        return SkipDecision(True, below_minimum(feature or "a newer kernel", minimum,
                                                f"{kernel.id} ({kernel.release})"))
    return SkipDecision(False)
