"""When a VM run is tried again, and how. Pure.

Two failures are the machine's, not the kernel's, and are retried:
- a KVM boot that never reaches the guest agent (a paravirtual /dev/kvm that creates VMs
  but cannot run a stock kernel, see vm/accel.py): booted again under TCG;
- a kernel that crashes before the agent starts (seen under TCG: an int3 Oops while the
  kernel patches its own code at boot): booted once more, the same way.
Anything after the agent started is the run's verdict and never retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Retries:
    first: str  # the accelerator asked for
    notes: list[str] = field(default_factory=list)  # what was retried, for the kernel's notes
    _crash_retried: bool = False
    _fell_back: bool = False

    def after(self, accel: str, booted: bool, interrupted: bool,
              crash_headline: str | None) -> str | None:
        """The accelerator of the next attempt after one ended this way, or None: done."""
        if booted or interrupted:
            return None
        if crash_headline and not self._crash_retried:
            self._crash_retried = True
            self.notes.append(f"crashed while booting, before the agent started "
                              f"({crash_headline}); booted once more")
            return accel
        if accel == "kvm" and not self._fell_back:
            self._fell_back = True
            self.notes.append("KVM boot failed; retried under TCG")
            return "tcg"
        return None
