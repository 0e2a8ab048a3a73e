"""The harness as users get it: a wheel built from this repository, installed (not
editable) into a fresh virtual environment and used from a directory outside the
repository, with the plugin on a user's own test file and the CLI on a bundled program.

Two short VM boots (EBPF_HARNESS_WHEEL_KERNEL, default 7.3). The environment is made as
the README tells users: from the system python3 with --system-site-packages (BCC is
there); pip installs the dependencies it lacks from the package index.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.config import load_config

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parent.parent.parent
KERNEL = os.environ.get("EBPF_HARNESS_WHEEL_KERNEL", "7.3")
# at the top: what builds and tools leave in a checkout; anywhere: bytecode, npm's tree
TOP_NOT_COPIED = {".git", ".venv", ".tox", "build", "dist", "results", ".pytest_cache",
                  ".ruff_cache", ".vagrant"}
NOT_COPIED = shutil.ignore_patterns("*.egg-info", "__pycache__", "*.pyc", "node_modules")


def _not_copied(directory: str, names: list[str]) -> set[str]:
    top = TOP_NOT_COPIED if Path(directory) == REPO else set()
    return set(NOT_COPIED(directory, names)) | (top & set(names))

USER_TESTS = '''
import os
import struct


def test_runs_in_the_kernel(kernel):
    assert os.uname().release == kernel.release


def test_bpf_fixture_compiles_and_loads(kernel, bpf):
    obj = bpf.compile("getpid_events.bpf.c", attach=True)
    rb = obj.ringbuf("events")
    me = os.getpid()
    seen = []
    for _ in range(20):
        seen += [struct.unpack_from("<I", e)[0] for e in rb.poll(0.2)]
        if me in seen:
            break
        os.getpid()
    assert me in seen
'''


@dataclass(frozen=True)
class Installed:
    venv: Path
    package: Path  # the installed harness/ in the environment's site-packages
    work: Path  # a user's directory, outside the repository
    env: dict[str, str]

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        exe = argv[0] if "/" in argv[0] else str(self.venv / "bin" / argv[0])
        p = subprocess.run([exe, *argv[1:]], cwd=self.work, env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        print(f"$ {' '.join(argv)}  -> {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p


def _user_env(venv: Path) -> dict[str, str]:
    """The caller's environment as a user's shell would have it: this environment's bin
    first, nothing that points python or pytest at the repository (the kernel cache,
    HOME and XDG_CACHE_HOME, stays)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("PYTEST_")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools writes build/ and *.egg-info into the tree it builds
    src = root / "src"
    shutil.copytree(REPO, src, ignore=_not_copied, symlinks=True)
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist),
                    str(src)], check=True, timeout=600)
    [wheel] = dist.glob("ebpf_harness-*.whl")
    venv = root / "venv"
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    subprocess.run([python, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                   timeout=300)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                   check=True, timeout=900)
    work = root / "project"
    work.mkdir()
    env = _user_env(venv)
    p = subprocess.run([str(venv / "bin" / "python"), "-c", "import harness; print(harness.__file__)"],
                       cwd=work, env=env, capture_output=True, text=True, check=True)
    package = Path(p.stdout.strip()).parent
    assert package.is_relative_to(venv) and not package.is_relative_to(REPO), package
    return Installed(venv, package, work, env)


def test_the_wheel_carries_every_data_file(installed: Installed):
    def files(d: Path) -> set[str]:
        return {str(p.relative_to(d)) for p in d.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}

    data = installed.package / "_data"
    assert files(REPO / "programs") == files(data / "programs")
    assert files(data / "kernels") == files(REPO / "kernels") != set()
    # every file inside harness/ ships: modules, py.typed, templates, the schema, ...
    own = files(REPO / "harness")
    assert {"py.typed", "guest/agent.py"} <= own <= files(installed.package)


def test_kernels_list_shows_the_bundled_catalog(installed: Installed):
    p = installed.run("ebpf-harness", "kernels", "list")
    assert p.returncode == 0, p.stderr
    for toml in sorted((REPO / "kernels").glob("*.toml")):
        for line in tomllib.loads(toml.read_text()).get("lines", {}):
            assert re.search(rf"^\s+{re.escape(line)}\s+suites:", p.stdout, re.M), line
    assert "sets:" in p.stdout


def test_plugin_runs_a_users_tests_in_the_kernel(installed: Installed):
    shutil.copy(REPO / "tests" / "data" / "getpid_events.bpf.c", installed.work)
    (installed.work / "test_user.py").write_text(USER_TESTS)
    p = installed.run("pytest", "--kernels", KERNEL, "-v", "test_user.py", timeout=1500)
    assert f"test_runs_in_the_kernel[{KERNEL}] PASSED" in p.stdout
    assert f"test_bpf_fixture_compiles_and_loads[{KERNEL}] PASSED" in p.stdout
    assert p.returncode == 0 and "2 passed" in p.stdout


def test_matrix_runs_the_bundled_program_from_the_package(installed: Installed):
    out = installed.work / "out.json"
    p = installed.run("ebpf-harness", "matrix", "--programs", "observability/exec_trace",
                      "-k", KERNEL, "--json", str(out), timeout=1500)
    assert p.returncode == 0, p.stderr
    [cell] = json.loads(out.read_text())["results"]
    assert (cell["subject"], cell["kernel"], cell["status"]) == (
        "observability/exec_trace", KERNEL, "pass"), cell["detail"]
    # the job the guest ran names the program's files: the installed package's copy
    rundir = Path(re.search(r"run directory: (\S+)", p.stderr).group(1))
    [task] = json.loads((rundir / f"{KERNEL}.job.json").read_text())["tasks"]
    program = installed.package / "_data" / "programs" / "observability" / "exec_trace"
    assert Path(task["check"]) == program / "check.py"
    assert not Path(task["check"]).is_relative_to(REPO)
    # compiled into the cache: no object nor vmlinux.h beyond what the package ships
    assert Path(task["object"]).is_relative_to(load_config().cache_dir / "objects")
    shipped = {f.name for f in (REPO / "programs").rglob("*.o")}
    assert {f.name for f in installed.package.rglob("*.o")} == shipped
    assert not list(installed.package.rglob("vmlinux.h"))
