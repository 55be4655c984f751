"""The package's public API: one import, the README's Python section run as it stands."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pydicom
import pytest

import encapsulated_stl as estl
from conftest import REPO
from from_seg_data import sorted_datasets, sphere_mask, tilted_ct, write_seg
from stl_samples import binary_stl_by_hand, cube_triangles

CUBE = cube_triangles(20.0, origin=(-4.0, -6.0, 30.0))


def readme_python_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("\n## Python\n"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    phantom = tilted_ct(tmp_path / "CT_DIR")
    (tmp_path / "skull.stl").write_bytes(binary_stl_by_hand(CUBE))
    source = sorted_datasets(phantom)
    write_seg(tmp_path / "seg.dcm", source, sphere_mask(phantom.geometry, (len(source), 64, 64))[None], ["Ball"])
    monkeypatch.chdir(tmp_path)
    return tmp_path, phantom


def test_the_readme_python_section_runs_as_written(workspace):
    folder, phantom = workspace
    namespace: dict = {}
    exec(compile(readme_python_section(), "README.md", "exec"), namespace)
    ct = pydicom.dcmread(phantom.files[0], stop_before_pixels=True)
    skull = estl.read(folder / "skull.dcm")
    np.testing.assert_allclose(skull.triangles_mm(), CUBE, atol=1e-5)
    assert skull.usage == "planning" and skull.description == "Skull"
    assert skull.frame_of_reference_uid == ct.FrameOfReferenceUID
    assert len(skull.source_instance_uids) == len(phantom.files)
    bone = estl.read(folder / "bone.dcm")
    assert bone.mesh.triangle_count > 1000 and bone.frame_of_reference_uid == ct.FrameOfReferenceUID
    ball = estl.read(folder / "segment1.dcm")
    assert ball.name.startswith("Ball") and len(ball.source_instance_uids) == len(phantom.files) + 1
    np.testing.assert_allclose(namespace["triangles"], skull.triangles_mm())
    second = estl.read(folder / "skull-v2.dcm")
    assert [(p.sop_instance_uid, p.purpose) for p in second.predecessors] == [(skull.sop_instance_uid, "edited")]
    assert (second.description, second.usage) == ("Skull, smoothed", "planning")


def test_one_import_reads_without_highdicom_or_vtk():
    # Slicer 5.6 to 5.10 bundle neither highdicom nor (as a Python package) this VTK use:
    # importing the package and reading a model must not load them.
    code = ("import sys, encapsulated_stl as estl; estl.read; estl.EncapsulatedModel; "
            "print(sorted(m for m in ('highdicom', 'vtk', 'vtkmodules') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"}).stdout
    assert out.strip() == "[]"


def test_every_public_name_is_there_and_documented():
    for name in estl.__all__:
        value = getattr(estl, name)
        assert value.__doc__, name
    for function in (estl.read, estl.wrap, estl.revise, estl.from_ct, estl.from_segmentation, estl.save,
                     estl.compare):
        doc = function.__doc__
        assert "Parameters" in doc and "Returns" in doc, function.__name__
    for function in (estl.wrap, estl.revise, estl.from_ct, estl.from_segmentation, estl.compare):
        assert "LPS" in function.__doc__ and ("mm" in function.__doc__ or "millimetre" in function.__doc__)


def test_wrap_takes_triangles_and_bytes_and_says_what_is_wrong(tmp_path):
    from_array = estl.wrap(CUBE, patient_id="P1")
    from_bytes = estl.wrap(binary_stl_by_hand(CUBE), patient_id="P1")
    for dataset in (from_array, from_bytes):
        path = estl.save(dataset, tmp_path / f"{dataset.SOPInstanceUID}.dcm")
        np.testing.assert_allclose(estl.read(path).triangles_mm(), CUBE, atol=1e-5)
    with pytest.raises(estl.EncapsulatedSTLError, match="unknown argument"):
        estl.wrap(CUBE, patient_id="P1", colour=(1, 0, 0))
    with pytest.raises(estl.EncapsulatedSTLError, match="needs a Patient ID"):
        estl.wrap(CUBE)
    with pytest.raises(estl.EncapsulatedSTLError, match=r"shape \(n, 3, 3\)"):
        estl.wrap(np.zeros((4, 3)), patient_id="P1")
    with pytest.raises(estl.OutputError):
        estl.save(from_array, tmp_path)  # a directory
