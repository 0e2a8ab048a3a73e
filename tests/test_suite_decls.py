"""program.toml declarations: the bundled suite parses, and mistakes are one-line errors
naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.suite import discover


def test_the_bundled_suite_parses():
    decls = discover()
    assert len(decls) == 27
    assert {d.domain for d in decls} == {"observability", "security", "networking"}


def _program(root: Path, toml: str) -> Path:
    d = root / "security" / "p"
    d.mkdir(parents=True)
    (d / "p.bpf.c").write_text("// empty\n")
    (d / "program.toml").write_text(toml)
    return d / "program.toml"


@pytest.mark.parametrize(("toml", "message"), [
    ('domain = "security"\nsource = "p.bpf.c"\nmin_kernal = "5.8"\n', "unknown key 'min_kernal'"),
    ('domain = "secuirty"\nsource = "p.bpf.c"\n', "domain must be one of"),
    ('domain = "security"\n', "needs 'source"),
    ('domain = "security"\nsource = "q.bpf.c"\n', "source = 'q.bpf.c', but"),
    ('domain = "security"\nsource = [\n', "not valid TOML"),
])
def test_malformed_declarations(tmp_path: Path, toml: str, message: str):
    f = _program(tmp_path, toml)
    with pytest.raises(ConfigError, match=message) as e:
        discover(tmp_path)
    assert str(f) in str(e.value)
