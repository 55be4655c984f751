"""The Python package stack each 3D Slicer release bundles, for CI's release matrix.

``python .ci/slicer_stacks.py RELEASE`` prints ``python=3.X`` and then one pip
requirement per line.  Read from the release's own SuperBuild files in
../shared/slicer/<release>/SuperBuild:

* External_python.cmake: the Python version (``_download_<version>_url``);
* External_python-dicom-requirements.cmake: pydicom, Pillow, six, retrying,
  dicomweb-client, and on 5.12+ highdicom, pyjpegls, typing_extensions (dcmqi, a
  command-line tool for DICOM SEG that nothing here runs, is left out);
* External_VTK.cmake: the VTK minor version.

What those files do not hold is stated here, read from the same release commits
(COMMITS.txt) in Slicer's repository: numpy and scipy (External_python-numpy.cmake,
External_python-scipy.cmake) and requests (External_python-requests-requirements.cmake).
VTK: Slicer builds its own; 5.6 and 5.8 (VTK 9.2) get PyPI's VTK 9.2 wheel; 5.10 and later
get the VTK that slicer-core, the wheel of Slicer's MRML, pins (9.6), because MRML needs it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SLICER = Path(__file__).resolve().parent.parent.parent / "shared" / "slicer"

#: External_python-numpy.cmake / -scipy.cmake / -requests-requirements.cmake at the release
#: commits (5.6 L40, 5.8 L41, 5.10 L43, 5.12 and main L44 for numpy).
NOT_IN_SHARED = {
    "5.6": ["numpy==1.26.1", "scipy==1.11.3", "requests==2.31.0"],
    "5.8": ["numpy==1.26.4", "scipy==1.13.1", "requests==2.32.3"],
    "5.10": ["numpy==2.0.2", "scipy==1.13.1", "requests==2.32.3"],
    "5.12": ["numpy==2.4.6", "scipy==1.17.1", "requests==2.34.2"],
    "main": ["numpy==2.4.6", "scipy==1.17.1", "requests==2.34.2"],
}
#: PyPI's wheel of the VTK minor version Slicer 5.6 and 5.8 build (9.2).
VTK_9_2_WHEEL = "vtk==9.2.6"
#: Slicer's MRML and module logic as a wheel (what the tests need beside Slicer's Python).
SLICER_CORE = "slicer-core>=5.11"
NOT_USED_HERE = {"dcmqi"}


def python_version(release: str) -> str:
    text = (SLICER / release / "SuperBuild" / "External_python.cmake").read_text()
    versions = re.findall(r"_download_(3\.\d+)\.\d+_url", text)
    if not versions:
        raise SystemExit(f"no Python version in {release}'s External_python.cmake")
    return versions[-1]


def dicom_requirements(release: str) -> list[str]:
    text = (SLICER / release / "SuperBuild" / "External_python-dicom-requirements.cmake").read_text()
    pins = re.findall(r"^\s*([A-Za-z0-9_.-]+)==([0-9][^\s\\]*)", text, re.MULTILINE)
    return [f"{name}=={version}" for name, version in pins if name.lower() not in NOT_USED_HERE]


def vtk_requirement(release: str) -> list[str]:
    text = (SLICER / release / "SuperBuild" / "External_VTK.cmake").read_text()
    if re.search(r'vtk_(egg|dist)_info_version "9\.2\.', text) and "9.4" not in text:
        return [VTK_9_2_WHEEL]
    return [SLICER_CORE]  # Slicer's MRML as a wheel, with the VTK it pins


def stack(release: str) -> list[str]:
    return dicom_requirements(release) + NOT_IN_SHARED[release] + vtk_requirement(release)


if __name__ == "__main__":
    release = sys.argv[1]
    print(f"python={python_version(release)}")
    print("\n".join(stack(release)))
