"""The GitHub Actions integration: action.yml and .github/workflows/*.yml.

Linted offline by tests/tools/lint.js (actionlint built to WebAssembly, plus the checks
actionlint does not make: the action's structure, `bash -n` on every run script, no
expression inside a run script, only actions/* or local actions, no URL, local `with:`
against the declared inputs), and the action's own scripts run here with a fake
ebpf-harness to see the command lines they build. Nothing here reaches GitHub.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tests" / "tools"
LINT = TOOLS / "lint.js"
ACTION = REPO / "action.yml"
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
SETUP = "run ./quickstart setup (it installs nodejs and runs npm ci --prefix tests/tools)"


def _node() -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.fail(f"node is not installed: {SETUP}")
    if not (TOOLS / "node_modules" / "@tktco" / "node-actionlint" / "main.wasm").is_file():
        pytest.fail(f"actionlint is not installed in tests/tools/node_modules: {SETUP}")
    return node


def lint(*files: Path, root: Path = REPO) -> dict:
    proc = subprocess.run(
        [_node(), str(LINT), "--root", str(root),
         # the reusable workflow checks out this repository there and uses its action
         "--local-action", f"./.ebpf-harness-action={ACTION}",
         *map(str, files)],
        capture_output=True, text=True, timeout=120, cwd=root,
    )
    if proc.returncode != 0:
        pytest.fail(f"lint.js exited {proc.returncode}: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def show(problems: list[dict]) -> str:
    return "\n".join(f"{p['file']}:{p['line']}:{p['column']}: [{p['kind']}] {p['message']}"
                     for p in problems)


def test_action_and_workflows_lint_clean():
    assert ACTION.is_file()
    assert {w.name for w in WORKFLOWS} >= {"ci.yml", "ebpf-harness.yml"}
    result = lint(ACTION, *WORKFLOWS)
    assert len(result["files"]) == 1 + len(WORKFLOWS)
    assert not result["problems"], "\n" + show(result["problems"])


BROKEN_WORKFLOW = """\
on:
  workflow_call:
    inputs:
      kernels: {type: string, default: "[]"}
jobs:
  kernel:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        kernel: ${{ fromJSON(inputs.kernels) }}
    steps:
      - uses: actions/checkout@v4
        with:
          no-such-input: true
      - run: ebpf-harness check -k ${{ matrix.kernel }} x.bpf.o
      - run: |
          if [ -f x ] then echo x; fi
      - run: echo ${{ steps.nope.outputs.results }}
      - uses: someone/else@v1
      - uses: ./.ebpf-harness-action
        with:
          kernel: "6.12"
      - run: echo from http://mirror.invalid/debian
"""

BROKEN_ACTION = """\
name: broken
inputs:
  kernels:
    default: ""
outputs:
  passed:
    description: no value
runs:
  using: composite
  steps:
    - run: echo "$KERNELS"
      env:
        KERNELS: ${{ inputs.kernel }}
    - name: cache
      uses: actions/cache@v4
      with:
        paths: /tmp
"""


def test_lint_finds_problems(tmp_path: Path):
    wf = tmp_path / ".github" / "workflows" / "broken.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text(BROKEN_WORKFLOW)
    action = tmp_path / "action.yml"
    action.write_text(BROKEN_ACTION)
    problems = lint(wf, action, root=tmp_path)["problems"]
    text = show(problems)

    def found(file: str, kind: str, words: str) -> bool:
        return any(p["file"] == file and p["kind"] == kind and words in p["message"]
                   for p in problems)

    wfn = ".github/workflows/broken.yml"
    assert found(wfn, "action", '"no-such-input" is not defined'), text  # actionlint
    assert found(wfn, "expression", '"nope"'), text  # actionlint: unknown step
    assert found(wfn, "injection", "pass the value through env"), text
    assert found(wfn, "shell", "syntax error"), text
    assert found(wfn, "policy", "someone/else@v1"), text
    assert found(wfn, "policy", "a URL in the file"), text
    assert found(wfn, "local", "has no input 'kernel'"), text
    assert found("action.yml", "structure", "no 'description'"), text
    assert found("action.yml", "structure", "input 'kernels' has no description"), text
    assert found("action.yml", "structure", "output 'passed' has no value"), text
    assert found("action.yml", "structure", "has no shell"), text
    assert found("action.yml", "expression", '"kernel" is not defined'), text  # actionlint
    assert found("action.yml", "action", 'missing input "key"'), text  # actionlint
    # problems point at the line of the step in the file
    lines = {p["line"] for p in problems if p["file"] == wfn and p["kind"] == "injection"}
    assert lines == {15, 18}, text


# --- the action's scripts, run here -----------------------------------------------------

def action_steps() -> dict[str, dict]:
    proc = subprocess.run([_node(), str(LINT), "--steps", str(ACTION)],
                          capture_output=True, text=True, timeout=60, check=True)
    return {s.get("id") or s["name"]: s for s in json.loads(proc.stdout)}


FAKE_HARNESS = """#!/bin/bash
# records its argv (NUL-separated), writes the reports it is asked for, exits FAKE_RC
printf '%s\\0' "$@" > "$ARGV_FILE"
while [ $# -gt 0 ]; do
  case "$1" in
    --json|--md|--html|--junit|--ebpf-json|--ebpf-md|--ebpf-html|--junitxml) echo '{}' > "$2"; shift ;;
    --) break ;;
  esac
  shift
done
exit "${FAKE_RC:-0}"
"""


@pytest.fixture
def gh(tmp_path: Path):
    """Runs one step of action.yml's scripts like the runner would, with a fake harness."""
    steps = action_steps()
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    harness = venv / "bin" / "ebpf-harness"
    harness.write_text(FAKE_HARNESS)
    python = venv / "bin" / "python"
    # `python -m pytest ...` is recorded like the harness; anything else is Python
    python.write_text(f'#!/bin/bash\nif [ "$1" = -m ]; then exec "{harness}" "$@"; fi\n'
                      f'exec "{sys.executable}" "$@"\n')
    for f in (harness, python):
        f.chmod(f.stat().st_mode | stat.S_IXUSR)
    work = tmp_path / "work"
    (work / "bpf" / "sub").mkdir(parents=True)
    for name in ("bpf/a.bpf.o", "bpf/sub/b.bpf.o", "bpf/c.bpf.c"):
        (work / name).write_text("")
    temp = tmp_path / "runner-temp"
    temp.mkdir()

    def run(step_id: str, rc: int = 0, **inputs: str):
        out = tmp_path / "out"
        out.mkdir(exist_ok=True)
        gh_output = tmp_path / "github_output"
        gh_output.write_text("")
        argv_file = tmp_path / "argv"
        argv_file.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("EBPF_HARNESS_")}
        env.update({
            "GITHUB_WORKSPACE": str(tmp_path), "GITHUB_OUTPUT": str(gh_output),
            "RUNNER_TEMP": str(temp), "RUNNER_OS": "Linux", "HOME": str(tmp_path / "home"),
            "VENV": str(venv), "OUT": str(out), "LOCK": "", "ARGV_FILE": str(argv_file),
            "FAKE_RC": str(rc),
        })
        for key in steps[step_id].get("env", {}):
            env.setdefault(key, "")
        env.update({k: v for k, v in inputs.items()})
        proc = subprocess.run(["bash", "-e", "-c", steps[step_id]["run"]], cwd=work, env=env,
                              capture_output=True, text=True, timeout=60)
        outputs = dict(line.split("=", 1) for line in gh_output.read_text().splitlines())
        argv = argv_file.read_text().split("\0")[:-1] if argv_file.exists() else None
        return proc, outputs, argv

    run.venv, run.work, run.out = venv, work, tmp_path / "out"
    return run


def test_action_check_builds_argv_without_a_shell(gh, tmp_path: Path):
    proc, outputs, argv = gh(
        "run", INPUT_COMMAND="check", INPUT_PATHS="bpf/**/*.bpf.o\n'bpf/c.bpf.c'",
        INPUT_KERNELS="5.10,7.3", INPUT_ARGS="--accel tcg --memory '$(touch pwned)'",
        INPUT_MIRROR="MIRROR-FROM-INPUT",
    )
    assert proc.returncode == 0, proc.stderr
    h = str(gh.venv / "bin" / "ebpf-harness")
    out = gh.out
    assert argv == [
        "check", "--json", f"{out}/results.json", "--md", f"{out}/report.md",
        "--html", f"{out}/report.html", "--junit", f"{out}/junit.xml",
        "--kernels", "5.10,7.3", "--accel", "tcg", "--memory", "$(touch pwned)",
        "--", "bpf/a.bpf.o", "bpf/sub/b.bpf.o", "bpf/c.bpf.c",
    ]
    assert not (gh.work / "pwned").exists()
    assert outputs == {"exit-code": "0", "passed": "true", "results": f"{out}/results.json",
                       "html": f"{out}/report.html", "markdown": f"{out}/report.md",
                       "junit": f"{out}/junit.xml"}
    assert f"ebpf-harness: {h} check" in proc.stdout


def test_action_matrix_run_and_pytest(gh, tmp_path: Path):
    _, outputs, argv = gh("run", rc=1, INPUT_COMMAND="matrix",
                          INPUT_PROGRAMS="security/*\nnetworking/xdp_*")
    assert argv[-2:] == ["--programs", "security/*,networking/xdp_*"]
    assert outputs["exit-code"] == "1" and outputs["passed"] == "false"

    _, _, argv = gh("run", INPUT_COMMAND="run", INPUT_RUN="execsnoop-bpfcc -T",
                    INPUT_ARGS="--alive 10", INPUT_KERNELS="6.12")
    assert argv[0] == "run" and argv[-6:] == ["6.12", "--alive", "10", "--", "execsnoop-bpfcc", "-T"]

    base = tmp_path / "base.json"
    base.write_text("{}")
    lock = tmp_path / "kernels.lock"
    _, _, argv = gh("run", INPUT_COMMAND="pytest", INPUT_PYTEST_ARGS="tests/bpf -v",
                    INPUT_KERNELS="default", INPUT_BASELINE=str(base), LOCK=str(lock),
                    INPUT_MAX_INSNS_GROWTH="10")
    out = gh.out
    assert argv == ["-m", "pytest", "tests/bpf", "-v", "--ebpf-json", f"{out}/results.json",
                    "--ebpf-md", f"{out}/report.md", "--ebpf-html", f"{out}/report.html",
                    "--junitxml", f"{out}/junit.xml", "--kernels", "default",
                    "--ebpf-lock", str(lock), "--ebpf-baseline", str(base),
                    "--ebpf-max-insns-growth", "10"]


def test_action_baseline_and_usage_errors(gh, tmp_path: Path):
    proc, _, argv = gh("run", INPUT_COMMAND="matrix", INPUT_BASELINE="missing.json")
    assert "--baseline" not in argv
    assert "::notice::ebpf-harness: no baseline at 'missing.json'" in proc.stdout

    base = tmp_path / "base.json"
    base.write_text("{}")
    _, _, argv = gh("run", INPUT_COMMAND="matrix", INPUT_BASELINE=str(base),
                    INPUT_MAX_INSNS_GROWTH="5")
    assert argv[argv.index("--baseline") + 1:argv.index("--baseline") + 4] == [
        str(base), "--max-insns-growth", "5"]

    proc, outputs, argv = gh("run", INPUT_COMMAND="check", INPUT_PATHS="")
    assert proc.returncode == 2 and argv is None and outputs == {}
    assert "needs paths" in proc.stdout

    proc, _, argv = gh("run", INPUT_COMMAND="check", INPUT_PATHS="x.bpf.o", INPUT_ARGS="'unclosed")
    assert proc.returncode != 0 and argv is None
    assert "cannot split" in proc.stderr


@pytest.mark.parametrize(("rc", "gate", "fails"), [
    ("0", "true", False), ("1", "true", True), ("1", "false", False), ("2", "false", True),
])
def test_action_gate(gh, rc: str, gate: str, fails: bool):
    proc, _, _ = gh("Gate", RC=rc, INPUT_GATE=gate, INPUT_COMMAND="check")
    assert (proc.returncode != 0) == fails, proc.stdout


def test_action_prepare_finds_the_lock_and_keys_the_cache(gh, tmp_path: Path):
    work = tmp_path / "work"
    proc, outputs, _ = gh("prep", INPUT_COMMAND="check", INPUT_WORKING_DIRECTORY="work",
                          INPUT_KERNELS="6.12")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outputs["lock"] == ""
    assert outputs["cache-key"].startswith(outputs["cache-restore"])
    assert outputs["cache-dir"] == f"{tmp_path}/home/.cache/ebpf-harness/kernels"

    (work / "kernels.lock").write_text("pinned")
    proc, outputs, _ = gh("prep", INPUT_COMMAND="check", INPUT_WORKING_DIRECTORY="work")
    assert outputs["lock"] == str(work / "kernels.lock")
    assert outputs["cache-key"].startswith("ebpf-harness-kernels-v1-Linux-lock-")
    assert outputs["cache-restore"] == ""

    proc, _, _ = gh("prep", INPUT_COMMAND="chek", INPUT_WORKING_DIRECTORY="work")
    assert proc.returncode == 2 and "command must be check" in proc.stdout
    proc, _, _ = gh("prep", INPUT_COMMAND="check", INPUT_WORKING_DIRECTORY="work",
                    INPUT_LOCK="nope.lock")
    assert proc.returncode == 2 and "lock file 'nope.lock' not found" in proc.stdout
