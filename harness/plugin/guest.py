"""The plugin's guest side: runs inside the VM's pytest and writes every report out."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from ..guest.protocol import PYTEST_REPORTS, RESULTS_DIR_ENV
from ..versions import KernelVersion
from .fixtures import KernelFixture
from .selection import KernelRef


class GuestSide:
    def __init__(self, config: pytest.Config, data: dict[str, Any]) -> None:
        self.config = config
        k = data["kernel"]
        self.ref = KernelRef(k["id"], k["release"], KernelVersion.parse(k["version"]))
        self.accel = k.get("accel", "")
        reports = os.path.join(os.environ[RESULTS_DIR_ENV], PYTEST_REPORTS)
        self._fd = os.open(reports, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._fixture: KernelFixture | None = None

    def _write(self, obj: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(obj, default=str) + "\n").encode())
        os.fsync(self._fd)

    def kernel_fixture(self) -> KernelFixture:
        if self._fixture is None:
            from ..guest import libbpf

            features = libbpf.probe_features(("kprobe",))
            self._fixture = KernelFixture(self.ref.id, os.uname().release, self.ref.version,
                                          self.accel, features)
        return self._fixture

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        self._write({"type": "report", "data": data})

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._write({"type": "collect-error", "nodeid": report.nodeid,
                         "longrepr": str(report.longrepr)[-4000:]})

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._write({"type": "finish", "exitstatus": int(exitstatus)})
