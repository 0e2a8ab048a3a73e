"""One exception hierarchy for everything the harness reports to a user.

    HarnessError                 base; ``str()`` is a complete message that says what to do
    ├── ConfigError              bad configuration, option or input path
    ├── ResultsError             a results file that cannot be read, validated or merged
    ├── KernelError              a kernel cannot be resolved or prepared
    │   ├── UnknownKernelError   an id the catalog does not know
    │   ├── MirrorError          the archive cannot be reached
    │   └── VerificationError    a signature or checksum does not match
    └── ToolError                a host tool is missing or failed (clang, gpgv, vng, ...)
        └── CompileError         a .bpf.c file does not compile

A VM that cannot start is not an exception: its cells say why (harness/decision.py).

Messages name the kernel, the program and the next step, because they are shown as-is
by the CLI (exit status 2) instead of a traceback.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class; the message is meant for the user."""


class ConfigError(HarnessError):
    pass


class ResultsError(HarnessError):
    pass


class KernelError(HarnessError):
    pass


class UnknownKernelError(KernelError):
    pass


class MirrorError(KernelError):
    pass


class VerificationError(KernelError):
    pass


class ToolError(HarnessError):
    pass


class CompileError(ToolError):
    pass

