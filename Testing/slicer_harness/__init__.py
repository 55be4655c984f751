"""Run our Slicer plugin and module through Slicer's own Python, release by release.

For a release (5.6, 5.8, 5.10, 5.12, main) :func:`load` makes this interpreter look like
that Slicer's embedded Python:

* ``slicer`` is the release's own package (../shared/slicer/<release>/Base/Python/slicer:
  ``__init__``, ``util``, ``i18n``, ``ScriptedLoadableModule``), with the MRML and module
  logic classes of the pip package slicer-core as its compiled "kits", exactly as
  Slicer's ``slicer/__init__.py`` imports its kits (``slicer.kits`` is the file Slicer's
  build generates);
* ``DICOMLib`` and the DICOM plugins (DICOMM3DPlugin on 5.12+) are the release's files;
* ``qt``, ``ctk``, ``slicer.app``, ``slicer.dicomDatabase``, ``slicer.qSlicerDICOMExportable``
  and ``qSlicerSubjectHierarchyPluginHandler`` are this package's replacements of the
  C++ they stand for (see ``qt.py``, ``ctk.py``, ``application.py``);
* our module and plugin are loaded the way Slicer loads scripted modules: their class is
  instantiated with a module object as ``parent``.

Without slicer-core (Python 3.9, the interpreter of Slicer 5.6 and 5.8: the MRML wheel
needs 3.10+), ``slicer`` has no MRML classes and :attr:`Harness.has_mrml` is False.
"""

from __future__ import annotations

import importlib
import itertools
import importlib.util
import os
import sys
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path

from . import application, ctk, export_dialog, qt

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SLICER_SOURCES = REPO.parent / "shared" / "slicer"
RELEASES = ("5.6", "5.8", "5.10", "5.12", "main")
MODULE_FOLDERS = (REPO / "EncapsulatedSTL", REPO / "DICOMEncapsulatedSTLPlugin")

#: Top-level modules a loaded release owns; dropped before another release is loaded.
_RELEASE_MODULES = ("slicer", "DICOMLib", "DICOMScalarVolumePlugin", "DICOMM3DPlugin", "DICOMSegmentationPlugin",
                    "DICOMEncapsulatedSTLPlugin", "EncapsulatedSTL", "qt", "ctk", "vtkSegmentationCorePython", "vtkITK")


def release_folder(release: str) -> Path:
    return SLICER_SOURCES / release


@dataclass
class Harness:
    release: str
    slicer: types.ModuleType
    app: application.Application
    database: ctk.ctkDICOMDatabase
    user: application.User
    has_mrml: bool
    temporary: Path
    modules: dict = field(default_factory=dict)

    @property
    def dicom_plugins(self) -> dict:
        return self.slicer.modules.dicomPlugins

    def new_scene(self):
        """An empty scene and DICOM database, as after File / Close scene and a new database."""
        if self.has_mrml:
            self.slicer.mrmlScene.Clear(0)
        self.database = ctk.ctkDICOMDatabase(self.temporary / f"database-{next(_databases)}", self.release)
        self.slicer.dicomDatabase = self.database
        self.app.setDICOMDatabase(self.database)
        self.user.shown.clear()
        self.user.answers.clear()
        qt.QSettings._store.clear()
        return self.slicer.mrmlScene if self.has_mrml else None

    def export_dialog(self) -> export_dialog.ExportDialog:
        return export_dialog.ExportDialog(self)


def _forget_release() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in _RELEASE_MODULES:
            del sys.modules[name]
    sys.path[:] = [p for p in sys.path if not p.startswith(str(SLICER_SOURCES))
                   and Path(p) not in MODULE_FOLDERS]


def _kits() -> types.ModuleType:
    """``slicer/kits.py`` as Slicer's build writes it: the compiled Python modules to import."""
    kits = types.ModuleType("slicer.kits")
    kits.available_kits = ["slicer_core"] if importlib.util.find_spec("slicer_core") else []
    return kits


def _register_segmentation_converters(slicer) -> None:
    """What qSlicerSegmentationsModule::setup does at start-up (Modules/Loadable/Segmentations/
    qSlicerSegmentationsModule.cxx): register the default conversion rules."""
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())


class LoadableModule:
    """A C++ loadable module as ``slicer.modules.<name>``: its ``logic()`` on the scene."""

    def __init__(self, name: str, logic_class_name: str):
        self.name = name
        self._logic_class_name = logic_class_name
        self._logic = None

    def logic(self):
        import slicer

        if self._logic is None:
            self._logic = getattr(slicer, self._logic_class_name)()
        if self._logic.GetMRMLScene() is not slicer.mrmlScene:
            self._logic.SetMRMLScene(slicer.mrmlScene)
        return self._logic


def load_scripted_module(harness: Harness, path: Path):
    """Load a scripted module file as qSlicerScriptedLoadableModule::setPythonSource does:
    import the file, instantiate the class named after it with the module as ``parent``."""
    slicer = harness.slicer
    name = path.stem
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    python_module = importlib.import_module(name)
    parent = application.ScriptedModule(str(path))
    parent.instance = getattr(python_module, name)(parent)
    setattr(slicer.modules, name.lower(), parent)
    setattr(slicer.modules, name + "Instance", parent.instance)
    harness.app.moduleManager().modules[name] = parent
    harness.modules[name] = parent
    return parent


def load(release: str, *, testing: bool = False, slicer_plugins: tuple[str, ...] = ("DICOMScalarVolumePlugin", "DICOMM3DPlugin")) -> Harness:
    """Make ``import slicer`` be Slicer ``release`` with our plugin and module loaded.

    ``slicer_plugins`` names Slicer's own DICOM plugins to register beside ours, where the
    release has them.  ``testing`` is Slicer's ``--testing`` mode (message boxes are
    skipped and answered OK by slicer.util).
    """
    if release not in RELEASES:
        raise ValueError(f"unknown Slicer release {release!r}; one of {RELEASES}")
    _forget_release()
    folder = release_folder(release)
    sys.modules["qt"] = qt
    sys.modules["ctk"] = ctk
    user = application.User()
    qt.user = user
    qt.QSettings._store.clear()
    sys.modules["slicer.kits"] = _kits()
    sys.path.insert(0, str(folder / "Base" / "Python"))
    sys.path.insert(0, str(folder / "Modules" / "Scripted"))
    sys.path.insert(0, str(folder / "Modules" / "Scripted" / "DICOMPlugins"))
    slicer = importlib.import_module("slicer")
    assert Path(slicer.__file__).parent == folder / "Base" / "Python" / "slicer", slicer.__file__
    has_mrml = hasattr(slicer, "vtkMRMLScene")

    temporary = Path(tempfile.mkdtemp(prefix=f"slicer-{release}-"))
    app = application.Application(release, str(temporary / "temp"), testing)
    os.makedirs(app.temporaryPath, exist_ok=True)
    os.environ["PATH"] = application.python_slicer_on_path(str(temporary))
    slicer.app = app
    slicer.qSlicerDICOMExportable = application.DICOMExportable
    slicer.qSlicerSubjectHierarchyPluginHandler = application.SubjectHierarchyPluginHandler
    slicer.qSlicerScriptedLoadableModule = application.ScriptedModule
    slicer.modules.dicomPlugins = {}
    # The DICOM module's Python instance (Modules/Scripted/DICOM/DICOM.py, not among the
    # files here): DICOMScalarVolumePlugin keeps its last reader on it.
    slicer.modules.DICOMInstance = types.SimpleNamespace()
    database = ctk.ctkDICOMDatabase(temporary / f"database-{next(_databases)}", release)
    slicer.dicomDatabase = database
    app.setDICOMDatabase(database)
    if has_mrml:
        import slicer_core.vtkSegmentationCore as segmentation_core

        sys.modules["vtkSegmentationCorePython"] = segmentation_core
        # Slicer's plugins import some kits by their module names, as in the application
        import slicer_core.vtkITK

        sys.modules["vtkITK"] = slicer_core.vtkITK
        slicer.mrmlScene = slicer.vtkMRMLScene()
        _register_segmentation_converters(slicer)
        slicer.modules.segmentations = LoadableModule("Segmentations", "vtkSlicerSegmentationsModuleLogic")
        slicer.modules.volumes = LoadableModule("Volumes", "vtkSlicerVolumesLogic")
        slicer.modules.models = LoadableModule("Models", "vtkSlicerModelsLogic")

    harness = Harness(release, slicer, app, database, user, has_mrml, temporary)
    plugins_folder = folder / "Modules" / "Scripted" / "DICOMPlugins"
    for name in slicer_plugins:
        if has_mrml and (plugins_folder / f"{name}.py").is_file():
            load_scripted_module(harness, plugins_folder / f"{name}.py")
    load_scripted_module(harness, REPO / "EncapsulatedSTL" / "EncapsulatedSTL.py")
    load_scripted_module(harness, REPO / "DICOMEncapsulatedSTLPlugin" / "DICOMEncapsulatedSTLPlugin.py")
    return harness


_current: Harness | None = None
_databases = itertools.count()


def for_release(release: str) -> Harness:
    """The loaded harness of ``release`` with an empty scene and database (loaded once, kept
    until another release is asked for)."""
    global _current
    if _current is None or _current.release != release:
        _current = load(release)
    _current.new_scene()
    return _current


def releases_under_test() -> list[str]:
    """``SLICER_RELEASES`` (comma-separated), or every release whose Python runs on this
    interpreter: 5.6 and 5.8 import ``imp``, which Python 3.12 removed."""
    chosen = os.environ.get("SLICER_RELEASES", "")
    if chosen:
        return [r.strip() for r in chosen.split(",") if r.strip()]
    return [r for r in RELEASES if sys.version_info < (3, 12) or r not in ("5.6", "5.8")]
