"""Build hook: the kernel catalog and the program suite ship inside the package.

Everything else about the package is declared in pyproject.toml; this file only adds one
step to setuptools' build_py. ``kernels/`` and ``programs/`` stay at the repository root
(where a reader looks for them, and ``programs/<domain>/<name>/`` is the suite's own
layout), but an installed package has no repository beside it, so the build copies both
trees whole into the built package as ``harness/_data/``; ``harness.paths.data_dir()``
finds them there at run time, and in the checkout otherwise. The sdist carries the two
trees through MANIFEST.in, so a wheel built from the sdist gets them the same way.

Why a build step and not a ``package-dir`` mapping of the two directories into data
subpackages: a mapped directory is invisible to ``packages.find``, so the mapping forces
an explicit list of every package (harness, harness.build, harness.guest, ...) in
pyproject.toml, and a subpackage someone adds later and forgets to list is silently left
out of the wheel. One copy of each tree cannot miss a file, whatever is added to it (a
program's .h, a prebuilt .o, a BCC script), and the package list stays discovered.
The files that do live inside harness/ (py.typed, report templates, the JSON Schema) are
ordinary package data, declared by glob in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("kernels", "programs")  # repository root -> harness/_data/
# a checkout's byproducts; everything else in the trees ships
IGNORE = shutil.ignore_patterns("__pycache__", "*.py[co]", ".*")


class BuildPyWithBundledData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install runs from the checkout, where the trees already are
        dest = Path(self.build_lib) / "harness" / "_data"
        shutil.rmtree(dest, ignore_errors=True)  # build/ outlives a build: no stale programs
        for name in BUNDLED:
            src = ROOT / name
            if not src.is_dir():
                raise SystemExit(f"{src} is missing: build from a checkout or a complete sdist")
            shutil.copytree(src, dest / name, ignore=IGNORE)


setup(cmdclass={"build_py": BuildPyWithBundledData})
