"""A small stand-in for the parts of 3D Slicer that need the Qt application.

``slicer-core`` gives the real MRML (scene, segmentation, model, transform and
subject hierarchy nodes, the segmentation converters).  What only the desktop
application has is doubled here with Slicer's own interface, so the plugin and
module files run unchanged:

* ``DICOMLib`` (``DICOMPlugin``, ``DICOMLoadable``): the sibling package;
* ``slicer.dicomDatabase``: ``fileValue``, ``fileForInstance``, ``filesForSeries``,
  ``instancesForSeries``, backed by pydicom headers of files the test inserts;
* ``slicer.qSlicerDICOMExportable``: name, tooltip, subjectHierarchyItemID,
  pluginClass, directory, confidence, ``tag``/``setTag``/``tags``;
* ``slicer.app`` (version numbers), ``slicer.mrmlScene`` (a real scene),
  ``slicer.modules.dicomPlugins`` and ``slicer.ScriptedLoadableModule``;
* the converter rules Slicer's Segmentations module registers at start-up.

:func:`install` sets all of this up (idempotent); :func:`new_scene` gives each test
a fresh real scene.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pydicom

HERE = Path(__file__).resolve().parent


class DICOMDatabaseDouble:
    """``ctkDICOMDatabase`` as plugins use it: tag values by file, files by UID."""

    def __init__(self):
        self._headers: dict[str, pydicom.Dataset] = {}

    def insert(self, paths) -> None:
        for path in paths:
            path = str(path)
            try:
                self._headers[path] = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:  # the real database also lists files it cannot parse
                self._headers[path] = pydicom.Dataset()

    def fileValue(self, fileName: str, tag: str) -> str:
        header = self._headers.get(str(fileName))
        if header is None:
            self.insert([fileName])
            header = self._headers[str(fileName)]
        group, element = (int(part, 16) for part in tag.split(","))
        item = header.get((group, element))
        if item is None or item.value is None:
            return ""
        if item.VR == "SQ":
            return ""
        value = item.value
        if isinstance(value, (list, pydicom.multival.MultiValue)):
            return "\\".join(str(v) for v in value)
        return str(value)

    def fileForInstance(self, sopInstanceUID: str) -> str:
        for path, header in self._headers.items():
            if str(header.get("SOPInstanceUID", "")) == sopInstanceUID:
                return path
        return ""

    def filesForSeries(self, seriesInstanceUID: str, hits: int = -1) -> list[str]:
        files = [p for p, h in self._headers.items() if str(h.get("SeriesInstanceUID", "")) == seriesInstanceUID]
        return files if hits < 0 else files[:hits]

    def instancesForSeries(self, seriesInstanceUID: str) -> list[str]:
        return [str(self._headers[p].SOPInstanceUID) for p in self.filesForSeries(seriesInstanceUID)]


class DICOMExportableDouble:
    """``qSlicerDICOMExportable``: what the Export to DICOM dialog hands a plugin."""

    def __init__(self):
        self.name = ""
        self.tooltip = ""
        self.subjectHierarchyItemID = 0
        self.pluginClass = ""
        self.directory = ""
        self.confidence = 0.0
        self._tags: dict[str, str] = {}

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._tags)

    def tag(self, name: str):
        return self._tags.get(name)

    def setTag(self, name: str, value: str) -> None:
        self._tags[name] = str(value)


class ApplicationDouble:
    majorVersion = 5
    minorVersion = 8


def _scripted_loadable_module():
    module = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = parent

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None):
            self.parent = parent

    class ScriptedLoadableModuleTest:
        def delayDisplay(self, message, msec=0):
            pass

    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        setattr(module, cls.__name__, cls)
    module.__all__ = [cls.__name__ for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget,
                                                ScriptedLoadableModuleLogic, ScriptedLoadableModuleTest)]
    return module


def install():
    """Make ``import slicer`` look like Slicer's Python environment (idempotent)."""
    import slicer

    if getattr(slicer, "_application_double", False):
        return slicer
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    repo = HERE.parent.parent
    for folder in (repo / "EncapsulatedSTL", repo / "DICOMEncapsulatedSTLPlugin"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    slicer.app = ApplicationDouble()
    slicer.dicomDatabase = DICOMDatabaseDouble()
    slicer.qSlicerDICOMExportable = DICOMExportableDouble
    slicer.modules = types.SimpleNamespace()
    scripted = _scripted_loadable_module()
    sys.modules["slicer.ScriptedLoadableModule"] = scripted
    slicer.ScriptedLoadableModule = scripted
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())
    slicer.mrmlScene = slicer.vtkMRMLScene()
    slicer._application_double = True
    return slicer


def new_scene():
    """A fresh real MRML scene as ``slicer.mrmlScene`` and an empty DICOM database."""
    import slicer

    install()
    slicer.mrmlScene = slicer.vtkMRMLScene()
    slicer.dicomDatabase = DICOMDatabaseDouble()
    return slicer.mrmlScene
