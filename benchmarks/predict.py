"""What predicting before booting costs: every object on every kernel, no VM.

    .venv/bin/python benchmarks/predict.py [--kernels default] [OBJECT|PROGRAM ...]

Default objects: the libbpf-tools skeletons Debian installs in /usr/sbin (whatever of
them carries an object), else the bundled suite's compiled objects. Prints, per kernel,
the time to take its BTF and kallsyms out of its image (first time only, then cached)
and to read them, then the time to read the objects and to predict every cell. The kernels must be
fetched already (ebpf-harness kernels fetch).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

from harness.config import load_config
from harness.inputs import inspect_all
from harness.kernels.cache import Cache
from harness.predict.facts import kernel_facts, read_model
from harness.predict.model import predict_object
from harness.report.progress import Progress
from harness.session import prepare_kernels


def objects(paths: list[str], scratch: Path) -> list[Path]:
    out = []
    for found in inspect_all(paths):
        if found.objects:
            for data in found.objects:
                p = scratch / f"{hashlib.sha256(data).hexdigest()[:16]}.o"
                p.write_bytes(data)
                out.append(p)
        else:
            out.append(found.path)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", default="default")
    ap.add_argument("paths", nargs="*")
    args = ap.parse_args()
    cfg = load_config()
    paths = args.paths or sorted(str(p) for p in Path("/usr/sbin").iterdir()
                                 if p.is_file() and _has_skeleton(p))
    kernels = prepare_kernels(args.kernels, cfg, Progress(quiet=True))
    scratch = cfg.cache_dir / "objects" / "bench-predict"
    scratch.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    objs = objects(paths, scratch)
    t_read = time.perf_counter()
    models = [read_model(o) for o in objs]
    t_models = time.perf_counter()
    facts = []
    for k in kernels:
        t = time.perf_counter()
        facts.append(kernel_facts(k, Cache(cfg.cache_dir)))
        syms = facts[-1].symbols
        print(f"kernel {k.id:10} {k.release:28} BTF and kallsyms read in "
              f"{time.perf_counter() - t:5.2f} s ({len(facts[-1].btf.types)} types, "
              f"{len(syms) if syms is not None else 'no'} code symbols)")
    t_facts = time.perf_counter()
    cells = refused = 0
    for m in models:
        for f in facts:
            got = predict_object(m, f)
            cells += len(got)
            refused += sum(p.refusal for p in got.values())
    t_end = time.perf_counter()
    print(f"{len(objs)} objects taken out of {len(paths)} files in {t_read - t0:.2f} s, "
          f"read as the loader sees them in {t_models - t_read:.2f} s")
    print(f"{len(kernels)} kernels' facts in {t_facts - t_models:.2f} s")
    print(f"{cells} program cells predicted in {t_end - t_facts:.2f} s ({refused} refusals)")
    print(f"total {t_end - t0:.2f} s for {len(objs)} objects on {len(kernels)} kernels")
    return 0


# the start of an embedded little-endian 64-bit relocatable ELF for EM_BPF (247)
_BPF_ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x01\x00\xf7\x00"


def _has_skeleton(p: Path) -> bool:
    try:
        data = p.read_bytes()
    except OSError:
        return False
    return data[:4] == b"\x7fELF" and _BPF_ELF in data[4:]


if __name__ == "__main__":
    sys.exit(main())
