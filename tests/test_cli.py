"""The CLI's error paths: clear messages, exit status 2, never a traceback."""

import json

from conftest import run_cli

from harness.results import KernelInfo, Report, Result


def test_unknown_kernel(tmp_path):
    p = run_cli("check", str(tmp_path / "x.bpf.o"), "--kernels", "4.19",
                env={"XDG_CACHE_HOME": str(tmp_path)})
    assert p.returncode == 2
    assert "unknown kernel '4.19'" in p.stderr and "5.10, 6.1, 6.12, 7.2, 7.3" in p.stderr
    assert "Traceback" not in p.stderr


def test_unreachable_mirror_names_url(tmp_path):
    p = run_cli("kernels", "fetch", "6.1", "--mirror", "http://127.0.0.1:9/debian",
                env={"XDG_CACHE_HOME": str(tmp_path)})
    assert p.returncode == 2
    assert "http://127.0.0.1:9/debian/dists/bookworm/InRelease" in p.stderr
    assert "--mirror" in p.stderr and "Traceback" not in p.stderr


def test_bad_config_value(tmp_path):
    p = run_cli("kernels", "list", env={"EBPF_HARNESS_JOBS": "many"})
    assert p.returncode == 2 and "EBPF_HARNESS_JOBS" in p.stderr


def test_run_without_command(tmp_path):
    p = run_cli("run", "--kernels", "5.10", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert p.returncode == 2 and "needs a command" in p.stderr


def test_report_renders_saved_results_and_exit_status(tmp_path):
    r = Report(kernels=[KernelInfo("5.10", "5.10.0-32-amd64", "5.10.223")],
               results=[Result("a.bpf.o:p", "5.10", "pass", "attach")])
    f = tmp_path / "r.json"
    r.write(f)
    p = run_cli("report", str(f))
    assert p.returncode == 0 and "a.bpf.o:p" in p.stdout and "OK: 1 of 1" in p.stdout
    d = json.loads(f.read_text())
    d["results"][0]["status"] = "reject"
    f.write_text(json.dumps(d))
    assert run_cli("report", str(f)).returncode == 1
    f.write_text("{broken")
    p = run_cli("report", str(f))
    assert p.returncode == 2 and "not JSON" in p.stderr and "Traceback" not in p.stderr


def test_kernels_list(tmp_path):
    p = run_cli("kernels", "list", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert p.returncode == 0
    assert "bullseye" in p.stdout and "default" in p.stdout
