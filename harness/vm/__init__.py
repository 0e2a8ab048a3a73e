"""Booting kernels: argv building (pure), acceleration choice, process control."""

from .backend import Backend, FakeBackend, VMOutcome, VMRequest, VngBackend

__all__ = ["Backend", "FakeBackend", "VMOutcome", "VMRequest", "VngBackend"]
