"""One check of TOML keys for every file the harness reads (harness/tomlkeys.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_config
from harness.errors import ConfigError
from harness.tomlkeys import check_keys


def test_the_first_unknown_key_is_named_with_where_and_what_is_known():
    check_keys({"a": 1}, ("a", "b"), "f.toml")
    with pytest.raises(ConfigError, match=r"^f\.toml: unknown key 'x\.y' \(and 1 more\); "
                                          r"known keys there: a, b$"):
        check_keys({"y": 1, "z": 2}, ("b", "a"), "f.toml", "x")
    with pytest.raises(ConfigError, match=r"f\.toml: maps\.m must be a table"):
        check_keys(3, ("a",), "f.toml", "maps.m")


def test_project_configuration_keys(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text('[tool.ebpf-harness]\nkernels = "5.10,6.12"\n')
    assert load_config(tmp_path, env={}).kernels == "5.10,6.12"
    # a key nothing reads is an error that lists what is known, not silently ignored
    (tmp_path / "pyproject.toml").write_text('[tool.ebpf-harness]\ndefault_set = "ci"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'tool.ebpf-harness.default_set'; "
                                          r"known keys there: .*kernels"):
        load_config(tmp_path, env={})
