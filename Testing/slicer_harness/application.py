"""What Slicer's C++ application provides to its Python, for tests.

* :class:`Application` stands for ``qSlicerApplication`` (``slicer.app``): version,
  testing mode, temporary path, settings, the IO manager, the module manager, the
  DICOM database and the main window's status bar.
* :class:`ScriptedModule` stands for ``qSlicerScriptedLoadableModule``: the ``parent``
  a scripted module's class receives, and the ``slicer.modules.<name>`` entry.
* :class:`DICOMExportable` stands for ``qSlicerDICOMExportable``.
* :class:`SubjectHierarchyPluginHandler` stands for ``qSlicerSubjectHierarchyPluginHandler``.
* :class:`User` is the person in front of the dialogs: it records every message box
  and popup and answers from a script (by default: the first button offered of OK,
  Yes).

Everything MRML is real (slicer-core); only these Qt-side objects are replaced.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass, field

from . import qt


@dataclass
class Shown:
    """One dialog as the user saw it."""

    title: str
    text: str
    detailed: str = ""
    icon: int = 0
    answer: int | None = None
    choices: list = field(default_factory=list)  # check boxes offered (Referenced datasets found)


@dataclass
class User:
    """Answers dialogs: ``answers`` is consumed first, then ``default`` decides."""

    answers: list = field(default_factory=list)
    default: str = "accept"          # "accept" (OK / Yes) or "reject" (Cancel / No)
    shown: list = field(default_factory=list)

    def answer(self, box: qt.QMessageBox) -> int:
        buttons = int(box.standardButtons)
        if self.answers:
            choice = self.answers.pop(0)
        elif self.default == "accept":
            choice = next((b for b in (qt.QMessageBox.Ok, qt.QMessageBox.Yes) if buttons & b), qt.QMessageBox.Ok)
        else:
            choice = next((b for b in (qt.QMessageBox.Cancel, qt.QMessageBox.No) if buttons & b),
                          qt.QMessageBox.Cancel)
        choices = [check.text for check in getattr(box, "checkboxes", {}).values()]
        self.shown.append(Shown(str(box.windowTitle).strip(), str(box.text), str(box.detailedText),
                                int(box.icon), choice, choices))
        return choice

    def shown_popup(self, dialog) -> None:
        texts = [getattr(item, "text", "") for item in (dialog.layout().items if dialog.layout() else [])]
        self.shown.append(Shown(str(dialog.windowTitle), "\n".join(t for t in texts if isinstance(t, str))))

    def texts(self) -> list[str]:
        return [s.text for s in self.shown]


class StatusBar:
    def __init__(self):
        self.messages: list[str] = []

    def showMessage(self, message, duration=0):
        self.messages.append(str(message))


class MainWindow(qt.QWidget):
    """qSlicerMainWindow: found by ``slicer.util.mainWindow()`` through its object name."""

    def __init__(self):
        super().__init__()
        self.objectName = "qSlicerMainWindow"
        self._status = StatusBar()

    def statusBar(self):
        return self._status


class CommandOptions:
    def __init__(self, testing: bool):
        self.testingEnabled = testing


class ModuleManager(qt.QObject):
    """qSlicerModuleManager: modules by name."""

    def __init__(self):
        super().__init__()
        self.modules: dict[str, object] = {}

    def module(self, name):
        return self.modules.get(name)


class IOManager(qt.QObject):
    """qSlicerCoreIOManager::loadNodes for the file types Slicer's DICOM plugins use.

    "ModelFile" is qSlicerModelsReader::load (Modules/Loadable/Models/qSlicerModelsReader.cxx):
    ``vtkSlicerModelsLogic::AddModel(fileName, coordinateSystem)`` and the node in the
    collection; the default coordinate system of the reader is LPS for Slicer 5 files
    without a header saying otherwise (vtkMRMLModelStorageNode).
    """

    def __init__(self, application):
        super().__init__()
        self.application = application
        self.loaded: list = []

    def fileType(self, fileName):
        return "ModelFile" if str(fileName).lower().endswith((".stl", ".vtk", ".vtp", ".obj", ".ply")) else ""

    def loadNodes(self, fileType, properties, loadedNodes=None, userMessages=None):
        import slicer

        if fileType != "ModelFile":
            raise NotImplementedError(f"the harness's IO manager reads models only, not {fileType}")
        node = slicer.modules.models.logic().AddModel(str(properties["fileName"]))
        if node is None:
            return False
        if loadedNodes is not None:
            loadedNodes.AddItem(node)
        return True

    def emitNewFileLoaded(self, parameters):
        self.loaded.append(dict(parameters))


class Application(qt.QObject):
    """qSlicerApplication as Slicer's Python sees it (``slicer.app``): Base/QTCore/
    qSlicerCoreApplication.h (main) temporaryPath L78, documentationBaseUrl L98,
    moduleManager L432, coreIOManager L435, moduleDocumentationUrl L540, dicomDatabase L586;
    Base/QTGUI/qSlicerApplication.h commandOptions L85, ioManager L88; testingEnabled is the
    PythonQt decorator of qSlicerBaseQTCorePythonQtDecorators.h L54."""

    applicationName = "Slicer"

    def __init__(self, release: str, temporary_path: str, testing: bool = False):
        super().__init__()
        major, minor = (5, 13) if release == "main" else (int(p) for p in release.split("."))
        self.majorVersion, self.minorVersion, self.patchVersion = major, minor, 0
        self.applicationVersion = f"{major}.{minor}.0"
        self.temporaryPath = temporary_path
        self.defaultScenePath = temporary_path
        self.documentationBaseUrl = f"https://slicer.readthedocs.io/en/{release}"
        self._testing = testing
        self.translations: dict[tuple[str, str], str] = {}
        self._main_window = MainWindow()
        self._modules = ModuleManager()
        self._io = IOManager(self)
        self._database = None

    def applicationLogic(self):
        """qSlicerCoreApplication::applicationLogic: the one vtkSlicerApplicationLogic, on the scene."""
        import slicer

        if getattr(self, "_logic", None) is None:
            self._logic = slicer.vtkSlicerApplicationLogic()
        if self._logic.GetMRMLScene() is not slicer.mrmlScene:
            self._logic.SetMRMLScene(slicer.mrmlScene)
        return self._logic

    def setOverrideCursor(self, cursor):
        qt.QApplication.setOverrideCursor(cursor)

    def restoreOverrideCursor(self):
        qt.QApplication.restoreOverrideCursor()

    def testingEnabled(self):
        return self._testing

    def commandOptions(self):
        return CommandOptions(self._testing)

    def processEvents(self, *args):
        pass

    def translate(self, context, text):
        """QCoreApplication::translate: the installed translation of ``text`` in ``context``
        (``translations[(context, text)]``), else the source text."""
        return self.translations.get((context, text), text)

    def topLevelWidgets(self):
        return [self._main_window]

    def moduleManager(self):
        return self._modules

    def ioManager(self):
        return self._io

    def coreIOManager(self):
        return self._io

    def settings(self):
        return qt.QSettings()

    def userSettings(self):
        return qt.QSettings()

    def dicomDatabase(self):
        return self._database

    def setDICOMDatabase(self, database):
        self._database = database

    def moduleDocumentationUrl(self, moduleName):
        return f"{self.documentationBaseUrl}/user_guide/modules/{moduleName.lower()}.html"


class ScriptedModule(qt.QObject):
    """qSlicerScriptedLoadableModule: the module's properties (title, categories, ...)
    that the Python class sets on ``parent``, and its file ``path``."""

    def __init__(self, path: str):
        super().__init__()
        self.path = str(path)
        self.name = os.path.splitext(os.path.basename(self.path))[0]
        self.title = ""
        self.categories = []
        self.dependencies = []
        self.contributors = []
        self.helpText = ""
        self.acknowledgementText = ""
        self.hidden = False
        self.icon = qt.QIcon()
        self.instance = None

    def widgetRepresentation(self):
        return None


class DICOMExportable(qt.QObject):
    """qSlicerDICOMExportable (Modules/Scripted/DICOMLib/Widgets/qSlicerDICOMExportable.h/.cxx):
    properties name, tooltip, subjectHierarchyItemID, pluginClass, directory, confidence
    (defaults cxx L63-69); ``tag(name)`` is ``Tags[name]``: an unknown name is inserted
    with a null QString, which reaches Python as "" (cxx L125-130).  The ``tags`` map has
    no PythonQt converter, so Python cannot read it; the dialog's C++ reads it, here
    :meth:`tag_map`."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.name = "Unknown exporter"
        self.tooltip = "Creates a DICOM file from the selected data"
        self.subjectHierarchyItemID = 0
        self.pluginClass = ""
        self.directory = ""
        self.confidence = 0.0
        self._tags: dict[str, str] = {}

    def tag_map(self) -> dict:
        return dict(self._tags)

    def tag(self, tagName):
        return self._tags.setdefault(str(tagName), "")

    def setTag(self, tagName, tagValue):
        self._tags[str(tagName)] = "" if tagValue is None else str(tagValue)

    def setDirectory(self, directory):
        self.directory = str(directory)


class SubjectHierarchyPluginHandler:
    """qSlicerSubjectHierarchyPluginHandler: the singleton's item-name display options."""

    _instance = None

    def __init__(self):
        # defaults of the getters when the settings hold no value
        # (qSlicerSubjectHierarchyPluginHandler.cxx, 5.10+ L549-615)
        self.displayPatientIDInSubjectHierarchyItemName = True
        self.displayPatientBirthDateInSubjectHierarchyItemName = False
        self.displayStudyIDInSubjectHierarchyItemName = False
        self.displayStudyDateInSubjectHierarchyItemName = True

    @classmethod
    def instance(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance


def python_slicer_on_path(folder: str) -> str:
    """A ``PythonSlicer`` executable (Slicer's launcher of its own Python) that runs this
    interpreter, in ``folder``; returns the PATH to use.  slicer.util.pip_install finds
    it with shutil.which, as inside Slicer, so first-use installs land in this venv."""
    launcher = os.path.join(folder, "PythonSlicer")
    with open(launcher, "w") as stream:
        stream.write(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    os.chmod(launcher, os.stat(launcher).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder + os.pathsep + os.environ.get("PATH", "")



