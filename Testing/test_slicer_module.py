"""The EncapsulatedSTL module and the plugin's module in Slicer, release by release (issue 11,
points 5 and 6): conventions of Slicer 5.6+ scripted modules, the self-test run by
Slicer's own ScriptedLoadableModule, first-use installs through slicer.util.pip_install,
"add to the DICOM database", and reading without highdicom."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import slicer_harness
from test_slicer_browser import SKULL, insert, write_models

REPO = Path(__file__).resolve().parent.parent


def test_the_module_follows_slicer_conventions(harness):
    module = harness.modules["EncapsulatedSTL"]
    assert module.title == "Encapsulated STL" and module.categories == ["Informatics"]
    icon = REPO / "EncapsulatedSTL" / "Resources" / "Icons" / "EncapsulatedSTL.png"
    assert not module.icon.isNull() and Path(module.icon.path) == icon  # found by ScriptedLoadableModule
    width, height = struct.unpack(">II", icon.read_bytes()[16:24])
    assert (width, height) == (128, 128)
    assert 'href="https://github.com/encapsulated-stl/SlicerEncapsulatedSTL' in module.helpText
    plugin = harness.modules["DICOMEncapsulatedSTLPlugin"]
    assert plugin.hidden and plugin.categories == ["Developer Tools.DICOM Plugins"]
    assert plugin.dependencies == ["DICOM", "EncapsulatedSTL"]
    assert "Resources/Icons/${MODULE_NAME}.png" in (REPO / "EncapsulatedSTL" / "CMakeLists.txt").read_text()
    widget = sys.modules["EncapsulatedSTL"].EncapsulatedSTLWidget
    base = sys.modules["slicer.ScriptedLoadableModule"].ScriptedLoadableModuleWidget
    assert widget.cleanup is not base.cleanup


def test_module_and_plugin_strings_are_translated(harness):
    harness.app.translations.update({
        ("EncapsulatedSTL", "Encapsulated STL"): "STL encapsulé",
        ("qSlicerAbstractCoreModule", "Informatics"): "Informatique",
        ("DICOMEncapsulatedSTLPlugin", "Encapsulated STL"): "STL encapsulé (DICOM)",
    })
    try:
        module = slicer_harness.load_scripted_module(harness, REPO / "EncapsulatedSTL" / "EncapsulatedSTL.py")
        assert module.title == "STL encapsulé" and module.categories == ["Informatique"]
        assert harness.dicom_plugins["DICOMEncapsulatedSTLPlugin"]().loadType == "STL encapsulé (DICOM)"
    finally:
        harness.app.translations.clear()
        slicer_harness.load_scripted_module(harness, REPO / "EncapsulatedSTL" / "EncapsulatedSTL.py")


def test_the_modules_self_test_passes_under_slicers_test_runner(mrml):
    """slicer.selfTests[...] is ScriptedLoadableModule.runTest: it finds EncapsulatedSTLTest."""
    mrml.slicer.selfTests["EncapsulatedSTL"](msec=0)
    models = mrml.slicer.util.getNodesByClass("vtkMRMLModelNode")
    assert len(models) == 1 and models[0].GetPolyData().GetNumberOfCells() > 100


def test_first_use_requirements_fit_the_bundled_pydicom(harness):
    module = sys.modules["EncapsulatedSTL"]
    assert module.highdicomRequirement("2.4.3") == "highdicom==0.22.0"
    assert module.highdicomRequirement("2.4.4") == "highdicom==0.22.0"
    assert module.highdicomRequirement("3.0.2").startswith("highdicom==0.2")
    assert module.pacsRequirement(False, "2.4.4") == "pynetdicom==2.0.2"
    assert module.pacsRequirement(False, "3.0.2") == "pynetdicom==3.0.4"
    constraints = Path(module._installedPackagesConstraints())
    try:
        pins = set(constraints.read_text().split())
    finally:
        constraints.unlink()
    for name in ("pydicom", "numpy", "vtk"):
        assert f"{name}=={importlib.metadata.version(name)}" in pins


def _wheel(folder: Path, name: str, requires: str = "") -> Path:
    """A minimal pure-Python wheel, built by hand (PEP 427)."""
    dist = f"{name}-1.0.dist-info"
    files = {f"{name}/__init__.py": "VALUE = 1\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
                                 + (f"Requires-Dist: {requires}\n" if requires else ""),
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
        archive.writestr(f"{dist}/RECORD", "".join(f"{m},,\n" for m in files) + f"{dist}/RECORD,,\n")
    return path


@pytest.mark.parametrize("answer", ["accept", "reject"])
def test_a_missing_package_is_installed_by_slicers_pip_install_only_after_asking(harness, tmp_path, answer):
    """ensurePackage asks, then runs slicer.util.pip_install (PythonSlicer -m pip install, found
    on PATH as inside Slicer), into this very interpreter, never changing a bundled package."""
    if not (slicer_harness.release_folder(harness.release) / "Base/Python/slicer/packaging.py").exists() \
            and harness.release in ("5.12", "main"):
        pytest.skip(f"Slicer {harness.release}'s pip_install delegates to slicer/packaging.py, "
                    "which is not among the Slicer files in ../shared/slicer")
    module = sys.modules["EncapsulatedSTL"]
    name = f"encapsulated_stl_probe_{answer}"
    harness.user.default = answer
    try:
        ok = module.ensurePackage(name, str(_wheel(tmp_path, name)), "Install the probe?", "Probe")
        assert ok is (answer == "accept")
        assert [s.title for s in harness.user.shown] == ["Probe"]
        assert (importlib.util.find_spec(name) is not None) is (answer == "accept")
        numpy_before = importlib.metadata.version("numpy")
        greedy = f"encapsulated_stl_probe_greedy_{answer}"
        harness.user.default = "accept"
        assert not module.ensurePackage(greedy, str(_wheel(tmp_path, greedy, "numpy>=99")), "Install?", "Probe")
        assert importlib.metadata.version("numpy") == numpy_before
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", name], capture_output=True)
        sys.modules.pop(name, None)
        importlib.invalidate_caches()


def test_export_to_the_database_copies_the_files_or_says_why_not(mrml, tmp_path):
    import slicer_scenes as scenes
    from test_slicer_export_dialog import load_ct, segment_volume

    from encapsulated_stl.errors import EncapsulatedSTLError

    ct = tmp_path / "ct"
    ct.mkdir()
    scenes.write_tilted_phantom(ct)
    volume = load_ct(mrml, ct)
    segmentation, _ = segment_volume(mrml, volume)
    logic = sys.modules["EncapsulatedSTL"].EncapsulatedSTLLogic()
    files = logic.exportToDatabase(segmentation, usage="planning")
    assert len(files) == 1 and files[0].startswith(mrml.database.databaseDirectory) and os.path.isfile(files[0])
    assert not [p for p in Path(mrml.app.temporaryPath).iterdir() if p.name.startswith("EncapsulatedSTL-")]
    blocked = tmp_path / "not a folder"
    blocked.write_bytes(b"")
    mrml.database.databaseDirectory = str(blocked)  # the database's folder cannot take files
    with pytest.raises(EncapsulatedSTLError, match="did not take 1 of the 1 objects"):
        logic.exportToDatabase(segmentation)
    mrml.database.isOpen = False
    with pytest.raises(EncapsulatedSTLError, match="no open DICOM database"):
        logic.exportToDatabase(segmentation)


def test_models_are_listed_and_loaded_with_only_what_slicer_bundles(mrml, tmp_path, monkeypatch):
    """Slicer 5.6-5.10 have no highdicom until the first export installs it, and no Slicer has
    numba: listing and loading need neither."""
    from DICOMLib import DICOMUtils

    folder = tmp_path / "models"
    folder.mkdir()
    series, _ = write_models(folder, None, [("Skull", SKULL, None)])
    insert(mrml, folder)
    for package in ("highdicom", "numba", "encapsulated_stl"):  # the core is imported afresh
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            monkeypatch.delitem(sys.modules, name)
    for package in ("highdicom", "numba"):
        monkeypatch.setitem(sys.modules, package, None)  # importing it raises ImportError
    node_ids = DICOMUtils.loadSeriesByUID([str(series)])
    models = [mrml.slicer.mrmlScene.GetNodeByID(i) for i in node_ids]
    models = [n for n in models if n.IsA("vtkMRMLModelNode")]
    assert [m.GetName() for m in models] == ["Skull"]
    points = np.array([models[0].GetPolyData().GetPoint(i) for i in range(models[0].GetPolyData().GetNumberOfPoints())])
    assert np.allclose(np.sort(points, axis=0), np.sort(np.unique(SKULL.reshape(-1, 3) * [-1, -1, 1], axis=0), axis=0))
