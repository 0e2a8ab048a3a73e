"""How a run uses the machine (harness.vm.plan) and how -j/--cpus are read."""

import pytest

from harness.cli import build_parser
from harness.config import load_config
from harness.errors import ConfigError
from harness.vm.plan import choose, memory_mb


def test_tcg_auto_runs_one_single_vcpu_guest_per_core():
    p = choose("tcg", kernels=5, cores=2, available_mb=20000, guest_mb=2048)
    assert (p.jobs, p.cpus, p.auto) == (2, 1, True)
    assert "2 core(s), tcg" in p.why


def test_auto_never_boots_more_guests_than_kernels_and_a_lone_guest_gets_the_cores():
    p = choose("tcg", kernels=1, cores=2, available_mb=20000, guest_mb=2048)
    assert (p.jobs, p.cpus) == (1, 2)
    p = choose("tcg", kernels=3, cores=16, available_mb=64000, guest_mb=2048)
    assert (p.jobs, p.cpus) == (3, 2)


def test_kvm_auto_keeps_two_vcpus_per_guest():
    assert (choose("kvm", 5, 4, 16000, 2048).jobs, choose("kvm", 5, 4, 16000, 2048).cpus) == (2, 2)
    assert choose("kvm", 5, 1, 16000, 2048).jobs == 1


def test_auto_jobs_fit_in_memory():
    p = choose("tcg", kernels=5, cores=8, available_mb=1024 + 2 * 2048 + 100, guest_mb=2048)
    assert p.jobs == 2 and "memory for 2 guest(s)" in p.why
    assert choose("tcg", 5, 8, available_mb=500, guest_mb=2048).jobs == 1


def test_given_jobs_and_cpus_are_kept():
    p = choose("tcg", kernels=5, cores=2, available_mb=None, guest_mb=2048, jobs=1)
    assert (p.jobs, p.cpus, p.auto) == (1, 2, False)
    p = choose("tcg", kernels=5, cores=2, available_mb=None, guest_mb=2048, jobs=2, cpus=2)
    assert (p.jobs, p.cpus) == (2, 2)
    assert choose("tcg", kernels=2, cores=2, available_mb=None, guest_mb=2048, jobs=8).jobs == 2


@pytest.mark.parametrize(("text", "mb"), [("2G", 2048), ("1536M", 1536), ("1024", 1024),
                                          ("4GiB", 4096)])
def test_memory_sizes(text, mb):
    assert memory_mb(text) == mb


def test_memory_size_that_is_not_one():
    with pytest.raises(ValueError, match="give a size"):
        memory_mb("lots")


def test_jobs_and_cpus_from_the_command_line_and_the_environment(tmp_path):
    args = build_parser().parse_args(["matrix", "-j", "auto", "--cpus", "1"])
    assert (args.jobs, args.cpus) == (0, 1)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["matrix", "-j", "0"])
    cfg = load_config(tmp_path, env={"EBPF_HARNESS_JOBS": "auto", "EBPF_HARNESS_CPUS": "2"})
    assert (cfg.jobs, cfg.cpus) == (0, 2)
    assert load_config(tmp_path, env={}).jobs == 0  # auto by default
    with pytest.raises(ConfigError, match="positive number, or auto"):
        load_config(tmp_path, env={"EBPF_HARNESS_JOBS": "-3"})
