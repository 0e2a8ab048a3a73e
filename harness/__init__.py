"""ebpf-harness: per-kernel verifier, attach and behaviour checks for eBPF programs.

The package is split by concern (see README "Architecture"):

- ``harness.kernels``  finding, verifying and caching real Debian kernels
- ``harness.vm``       booting them with virtme-ng (and a fake backend for tests)
- ``harness.guest``    the agent that runs inside the VM (imports nothing from the host side)
- ``harness.results``  the one versioned results model every report reads
- ``harness.report``   renderers (terminal matrix, JSON)
- ``harness.cli``      the ``ebpf-harness`` command

This module stays import-light on purpose: the guest agent is started as
``python3 -m harness.guest`` and must not pull host-side modules in.
"""

__version__ = "0.1.0"
