"""``python -m slicer_harness first-use RELEASE``: what the module installs at first use.

Run in a virtual environment that holds a Slicer release's bundled packages, it loads the
release's Python with our module (as Slicer does at start-up) and calls the module's own
first-use functions with the user answering OK: ``ensureHighdicom`` (export) and
``ensurePacsPackages`` (sending by DIMSE and by DICOMweb).  The module decides what is
missing and which version fits, and installs it with slicer.util.pip_install, into this
environment (PythonSlicer on PATH).

Slicer 5.12 and main delegate pip_install to slicer/packaging.py, which is not among the
Slicer files here; there the requirement the module chose is installed with pip, with the
same constraints the module writes (every installed distribution pinned).
"""

from __future__ import annotations

import subprocess
import sys

from . import load


def first_use(release: str) -> int:
    harness = load(release)
    module = sys.modules["EncapsulatedSTL"]
    wanted = [("highdicom", module.highdicomRequirement(), module.ensureHighdicom, ()),
              ("pynetdicom", module.pacsRequirement(False), module.ensurePacsPackages, (False,)),
              ("dicomweb_client", module.pacsRequirement(True), module.ensurePacsPackages, (True,))]
    for name, requirement, ensure, arguments in wanted:
        if ensure(*arguments):
            print(f"{name}: present or installed by the module ({requirement} if it was missing)")
            continue
        if release not in ("5.12", "main"):
            print(f"error: the module could not install {requirement}", file=sys.stderr)
            return 1
        constraints = module._installedPackagesConstraints()
        print(f"{name}: slicer.packaging is not available here; pip install {requirement} "
              "with the module's constraints")
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", requirement, "--constraint", constraints])
        if done.returncode:
            return done.returncode
    for shown in harness.user.shown:
        print(f"asked: {shown.title}: {shown.text}")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "first-use":
        print("usage: python -m slicer_harness first-use RELEASE", file=sys.stderr)
        return 2
    return first_use(argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
