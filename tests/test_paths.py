"""Where the bundled data is (checkout or installed package), and the guest's PYTHONPATH,
which holds the harness and nothing else of the environment it was installed in."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import paths
from harness.config import Config
from harness.orchestrator import guest_command
from harness.suite import PROGRAMS_DIR


def test_a_checkout_finds_its_own_trees(repo: Path):
    assert paths.data_dir() == repo  # no harness/_data in a checkout
    assert Config().catalog == repo / "kernels"
    assert PROGRAMS_DIR.parent == repo


def test_an_installed_copy_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pkg = tmp_path / "site-packages" / "harness"
    monkeypatch.setattr(paths, "INSTALLED_DATA", pkg / "_data")
    monkeypatch.setattr(paths, "CHECKOUT", pkg.parent)
    # neither: the installed location, so that an error names where the data belongs
    assert paths.data_dir() == pkg / "_data"
    (pkg.parent / "kernels").mkdir(parents=True)  # a checkout (or an editable install)
    assert paths.data_dir() == pkg.parent
    (pkg / "_data" / "kernels").mkdir(parents=True)
    assert paths.data_dir() == pkg / "_data"


def test_guest_pythonpath_holds_only_the_package(tmp_path: Path):
    d = paths.guest_pythonpath(tmp_path)
    assert d.is_relative_to(tmp_path) and os.listdir(d) == ["harness"]
    assert (d / "harness").resolve() == paths.PACKAGE_DIR
    assert paths.guest_pythonpath(tmp_path) == d  # made once, reused
    argv = guest_command(tmp_path / "job.json", d)
    assert f"PYTHONPATH={d}" in argv and f"PYTHONPATH={paths.CHECKOUT}" not in argv
    # the agent imports from there, with nothing else of this environment on the path
    code = "import harness.guest.agent, harness; print(harness.__file__)"
    out = subprocess.run([sys.executable, "-S", "-c", code], env={"PYTHONPATH": str(d)},
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert out.strip() == str(d / "harness" / "__init__.py")


def test_the_guest_python_reads_set_up_files(tmp_path: Path):
    """The bpf fixture resolves set-up files in the guest: Debian's python3 with only the
    package on its path must import bpfobj and pyelftools (python3-pyelftools)."""
    d = paths.guest_pythonpath(tmp_path)
    code = ("import harness.bpfobj.setup, harness.bpfobj.elf, elftools, sys; "
            "print(sorted(m for m in sys.modules if m.startswith('harness')))")
    out = subprocess.run(["/usr/bin/python3", "-c", code], env={"PYTHONPATH": str(d)},
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    # pure modules only: nothing of the host side (kernels, vm, runner, session, report)
    loaded = ast.literal_eval(out.stdout)
    assert not [m for m in loaded if m.split(".")[1:2] and m.split(".")[1] in
                ("kernels", "vm", "runner", "session", "report", "cli")], loaded
