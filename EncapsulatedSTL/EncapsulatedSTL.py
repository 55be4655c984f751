"""3D Slicer module: segmentations and models <-> DICOM Encapsulated STL.

The GUI picks a segmentation or model, its segments, the reference volume and the
model's metadata, and writes Encapsulated STL objects to a folder or the DICOM
database; it sends what it wrote to a DICOM node or DICOMweb server, and it loads
Encapsulated STL files.  :class:`EncapsulatedSTLLogic` does
the work (and is the console API); the DICOM plugin (DICOMEncapsulatedSTLPlugin)
calls the same logic.  Everything about DICOM, STL and slice geometry is the
``encapsulated_stl`` package's: this file only moves data between MRML nodes and it.
"""

import logging
import os

import numpy as np
import vtk
from vtk.util import numpy_support

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

#: highdicom: Slicer 5.12 and later bundle highdicom 0.27.0 (with pydicom 3), which is
#: used as it is.  Slicer up to 5.10 bundles pydicom 2.4 and no highdicom; highdicom 0.23
#: and later need pydicom 3, so the last release for pydicom 2 is 0.22.0 (see the README's
#: Slicer section).
HIGHDICOM_FOR_PYDICOM_2 = "highdicom==0.22.0"
HIGHDICOM_FOR_PYDICOM_3 = "highdicom==0.28.2"

#: Packages for sending, installed on first use when Slicer lacks them.  pynetdicom 3
#: needs pydicom 3 (Slicer 5.12 and later); pynetdicom 2.0.2 works with pydicom 2.
#: dicomweb-client is bundled by every Slicer release.
PYNETDICOM_FOR_PYDICOM_2 = "pynetdicom==2.0.2"
PYNETDICOM_FOR_PYDICOM_3 = "pynetdicom==3.0.4"
DICOMWEB_CLIENT = "dicomweb-client>=0.59"

ENCAPSULATED_STL_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.104.3"
ENCAPSULATED_MTL_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.104.5"
#: The colour of a surface whose material is unknown (an OBJ group without its MTL): a
#: grey, not (0.5, 0.5, 0.5), which vtkSegmentation takes for "no colour" and replaces by
#: the next colour of its table (vtkSegment::SEGMENT_COLOR_INVALID).
UNKNOWN_MATERIAL_COLOR = (0.75, 0.75, 0.75)
DOCUMENTATION_URL = "https://github.com/encapsulated-stl/SlicerEncapsulatedSTL#in-3d-slicer"


def _pydicomMajor(pydicomVersion=None):
    if pydicomVersion is None:
        import pydicom

        pydicomVersion = pydicom.__version__
    return int(str(pydicomVersion).split(".")[0])


def highdicomRequirement(pydicomVersion=None):
    """The pip requirement of highdicom that fits the running pydicom."""
    return HIGHDICOM_FOR_PYDICOM_2 if _pydicomMajor(pydicomVersion) < 3 else HIGHDICOM_FOR_PYDICOM_3


def _installedPackagesConstraints():
    """A pip constraints file pinning every installed distribution to its version, so that
    installing a missing package never upgrades or downgrades what Slicer bundles."""
    import importlib.metadata
    import tempfile

    pins = sorted({f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()
                   if d.metadata["Name"]})
    with tempfile.NamedTemporaryFile("w", suffix="-constraints.txt", delete=False) as stream:
        stream.write("\n".join(pins) + "\n")
    return stream.name


def ensurePackage(moduleName, requirement, question, title, askUser=True):
    """Import ``moduleName``, pip-installing ``requirement`` first (after asking) if missing.

    What is installed never replaces a package Slicer already has (every installed
    distribution is pinned).  Returns True when the module can be imported.
    """
    import importlib

    try:
        importlib.import_module(moduleName)
        return True
    except ImportError:
        pass
    if askUser and not slicer.util.confirmOkCancelDisplay(question, title):
        return False
    constraints = _installedPackagesConstraints()
    try:
        slicer.util.pip_install([requirement, "--constraint", constraints])
    except Exception as error:  # no network, no wheel for this Python...: the caller reports it
        logging.error(f"Could not install {requirement}: {error}")
        return False
    finally:
        os.remove(constraints)
    importlib.invalidate_caches()
    try:
        importlib.import_module(moduleName)
        return True
    except ImportError:
        return False


def ensureHighdicom(askUser=True):
    """Import highdicom, installing it (after asking) if Slicer does not have it.

    Returns True when highdicom can be imported.
    """
    requirement = highdicomRequirement()
    return ensurePackage(
        "highdicom", requirement,
        _("Encapsulated STL export needs the Python package '{requirement}', which is not installed. "
          "Install it now? (This takes a minute and needs an internet connection.)").format(requirement=requirement),
        _("Install highdicom"), askUser,
    )


def pacsRequirement(dicomWeb, pydicomVersion=None):
    """The pip requirement that sending over DICOMweb (or DIMSE) needs."""
    if dicomWeb:
        return DICOMWEB_CLIENT
    return PYNETDICOM_FOR_PYDICOM_2 if _pydicomMajor(pydicomVersion) < 3 else PYNETDICOM_FOR_PYDICOM_3


def ensurePacsPackages(dicomWeb, askUser=True):
    """Import dicomweb-client (DICOMweb) or pynetdicom (DIMSE), installing it after asking.

    Returns True when it can be imported.
    """
    requirement = pacsRequirement(dicomWeb)
    return ensurePackage(
        "dicomweb_client" if dicomWeb else "pynetdicom", requirement,
        _("Sending needs the Python package '{requirement}', which is not installed. "
          "Install it now? (This needs an internet connection.)").format(requirement=requirement),
        _("Install package"), askUser,
    )


def _numpyFromMatrix(matrix):
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _transformPoints(transform, points):
    """``(n, 3)`` points through a VTK transform (linear or not)."""
    source = vtk.vtkPoints()
    source.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True))
    target = vtk.vtkPoints()
    transform.TransformPoints(source, target)
    return numpy_support.vtk_to_numpy(target.GetData()).astype(np.float64).reshape(-1, 3)


#
# Module
#


class EncapsulatedSTL(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Encapsulated STL")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Informatics")]
        self.parent.dependencies = []
        self.parent.contributors = ["encapsulated-stl project"]
        self.parent.helpText = _(
            "Export segmentations and models as DICOM Encapsulated STL (Supplement 205) objects "
            "linked to their source CT or MR, with exact tilted-gantry geometry, and load them back.")
        self.parent.helpText += "<p>" + _('See the <a href="{url}">documentation</a>.').format(url=DOCUMENTATION_URL) + "</p>"
        self.parent.acknowledgementText = _("DICOM Encapsulated STL for 3D printing.")


#
# Widget
#


class EncapsulatedSTLWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        import ctk
        import qt

        self.logic = EncapsulatedSTLLogic()

        exportBox = ctk.ctkCollapsibleButton()
        exportBox.text = _("Export to Encapsulated STL")
        self.layout.addWidget(exportBox)
        form = qt.QFormLayout(exportBox)

        self.nodeSelector = slicer.qMRMLNodeComboBox()
        self.nodeSelector.nodeTypes = ["vtkMRMLSegmentationNode", "vtkMRMLModelNode"]
        self.nodeSelector.addEnabled = False
        self.nodeSelector.removeEnabled = False
        self.nodeSelector.noneEnabled = False
        self.nodeSelector.setMRMLScene(slicer.mrmlScene)
        form.addRow(_("Segmentation or model:"), self.nodeSelector)

        self.segmentsSelector = slicer.qMRMLSegmentsTableView()
        self.segmentsSelector.selectionMode = qt.QAbstractItemView.ExtendedSelection
        self.segmentsSelector.setMaximumHeight(150)
        form.addRow(_("Segments (none selected = all):"), self.segmentsSelector)

        self.referenceSelector = slicer.qMRMLNodeComboBox()
        self.referenceSelector.nodeTypes = ["vtkMRMLScalarVolumeNode"]
        self.referenceSelector.noneEnabled = True
        self.referenceSelector.addEnabled = False
        self.referenceSelector.removeEnabled = False
        self.referenceSelector.setMRMLScene(slicer.mrmlScene)
        self.referenceSelector.toolTip = _("Source CT/MR; by default the segmentation's reference geometry volume.")
        form.addRow(_("Reference volume:"), self.referenceSelector)

        self.segmentsCombo = qt.QComboBox()
        self.segmentsCombo.addItems([_("one STL object per segment"), _("one STL object with all segments"),
                                     _("one OBJ object, a group per segment, colours in MTL")])
        self.segmentsCombo.toolTip = _(
            "Encapsulated STL holds one surface without colour in the object's attributes; Encapsulated OBJ "
            "(with its Encapsulated MTL) holds every segment as a named group with its colour and opacity.")
        form.addRow(_("Segments:"), self.segmentsCombo)
        self.versionCombo = qt.QComboBox()
        self.versionCombo.addItems([_("new model"), _("new version of the loaded object (edited)"),
                                    _("new version of the loaded objects (component)")])
        self.versionCombo.toolTip = _(
            "For a model or segments loaded from Encapsulated STL: store the export as a new version that "
            "names the loaded object(s) as its predecessors, in their study and Frame of Reference.")
        form.addRow(_("Store as:"), self.versionCombo)
        self.descriptionEdit = qt.QLineEdit()
        self.descriptionEdit.placeholderText = _("segment names")
        form.addRow(_("Content description:"), self.descriptionEdit)
        self.seriesDescriptionEdit = qt.QLineEdit(_("3D printing model"))
        form.addRow(_("Series description:"), self.seriesDescriptionEdit)
        self.usageCombo = qt.QComboBox()
        self.usageCombo.addItems(["", "planning", "education", "diagnostic", "tool", "prosthetic",
                                  "implant", "quality-control", "simulation"])
        form.addRow(_("Model usage:"), self.usageCombo)
        self.lateralityCombo = qt.QComboBox()
        self.lateralityCombo.addItems(["", "R", "L", "U", "B"])
        form.addRow(_("Laterality:"), self.lateralityCombo)
        self.unitsCombo = qt.QComboBox()
        self.unitsCombo.addItems(["mm", "cm", "m", "um"])
        form.addRow(_("Units:"), self.unitsCombo)

        self.toDatabaseCheck = qt.QCheckBox(_("add to the DICOM database"))
        self.toDatabaseCheck.checked = True
        form.addRow(_("Output:"), self.toDatabaseCheck)
        self.folderButton = ctk.ctkDirectoryButton()
        self.folderButton.directory = slicer.app.defaultScenePath
        form.addRow(_("Folder:"), self.folderButton)

        self.exportButton = qt.QPushButton(_("Export"))
        form.addRow(self.exportButton)

        self.setupSendSection()

        loadBox = ctk.ctkCollapsibleButton()
        loadBox.text = _("Load Encapsulated STL file")
        self.layout.addWidget(loadBox)
        loadForm = qt.QFormLayout(loadBox)
        self.loadAsSegmentationCheck = qt.QCheckBox(_("as segmentation"))
        loadForm.addRow(self.loadAsSegmentationCheck)
        self.loadButton = qt.QPushButton(_("Load file..."))
        loadForm.addRow(self.loadButton)
        self.layout.addStretch(1)

        self.nodeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onNodeChanged)
        self.exportButton.connect("clicked(bool)", self.onExport)
        self.loadButton.connect("clicked(bool)", self.onLoad)
        self.sendButton.connect("clicked(bool)", self.onSend)
        self.destinationEdit.connect("textChanged(QString)", self.onDestinationChanged)
        self.onNodeChanged(self.nodeSelector.currentNode())
        self.onDestinationChanged(self.destinationEdit.text)

    #: QSettings keys of the send section.  Passwords and tokens are never stored.
    SETTINGS_DESTINATION = "EncapsulatedSTL/SendDestination"
    SETTINGS_CALLING_AE_TITLE = "EncapsulatedSTL/SendCallingAETitle"
    SETTINGS_USER = "EncapsulatedSTL/SendUser"
    SETTINGS_TLS_CERTIFICATE = "EncapsulatedSTL/SendTlsCertificate"
    SETTINGS_TLS_KEY = "EncapsulatedSTL/SendTlsKey"
    SETTINGS_TLS_CA = "EncapsulatedSTL/SendTlsCACertificates"

    def setupSendSection(self):
        """The "Send to PACS" group: destination, calling AE title, user, password, TLS files."""
        import ctk
        import qt

        settings = qt.QSettings()
        self.lastExportedFiles = []
        sendBox = ctk.ctkCollapsibleButton()
        sendBox.text = _("Send to PACS")
        self.layout.addWidget(sendBox)
        form = qt.QFormLayout(sendBox)

        self.destinationEdit = qt.QLineEdit(str(settings.value(self.SETTINGS_DESTINATION, "") or ""))
        self.destinationEdit.placeholderText = _("ORTHANC@pacs.example.org:4242 or https://pacs.example.org/dicom-web")
        self.destinationEdit.toolTip = _(
            "A DICOM node as AET@HOST:PORT (C-STORE) or a DICOMweb service root URL (STOW-RS). "
            "Remembered in the application settings.")
        form.addRow(_("Destination:"), self.destinationEdit)
        self.callingAETitleEdit = qt.QLineEdit(str(settings.value(self.SETTINGS_CALLING_AE_TITLE, "") or ""))
        self.callingAETitleEdit.placeholderText = _("ENCAPSULATEDSTL")
        self.callingAETitleEdit.toolTip = _("Our AE title; the PACS must know it (DICOM node only).")
        form.addRow(_("Calling AE title:"), self.callingAETitleEdit)
        self.userEdit = qt.QLineEdit(str(settings.value(self.SETTINGS_USER, "") or ""))
        self.userEdit.placeholderText = _("(none)")
        self.userEdit.toolTip = _("DICOMweb user (HTTP basic authentication). Remembered.")
        form.addRow(_("User:"), self.userEdit)
        self.passwordEdit = qt.QLineEdit()
        self.passwordEdit.echoMode = qt.QLineEdit.Password
        self.passwordEdit.toolTip = _(
            "With a user: the user's password. Without a user: a bearer token. "
            "Kept only while Slicer runs: never saved.")
        form.addRow(_("Password or token:"), self.passwordEdit)

        tlsBox = ctk.ctkCollapsibleGroupBox()
        tlsBox.title = _("TLS")
        tlsBox.collapsed = True
        tlsForm = qt.QFormLayout(tlsBox)
        self.tlsCertificateEdit = ctk.ctkPathLineEdit()
        self.tlsCertificateEdit.currentPath = str(settings.value(self.SETTINGS_TLS_CERTIFICATE, "") or "")
        self.tlsCertificateEdit.toolTip = _("Our certificate for DICOM TLS (PEM), with its key.")
        tlsForm.addRow(_("Certificate:"), self.tlsCertificateEdit)
        self.tlsKeyEdit = ctk.ctkPathLineEdit()
        self.tlsKeyEdit.currentPath = str(settings.value(self.SETTINGS_TLS_KEY, "") or "")
        self.tlsKeyEdit.toolTip = _("The private key of the certificate (PEM, not encrypted).")
        tlsForm.addRow(_("Private key:"), self.tlsKeyEdit)
        self.tlsCAEdit = ctk.ctkPathLineEdit()
        self.tlsCAEdit.currentPath = str(settings.value(self.SETTINGS_TLS_CA, "") or "")
        self.tlsCAEdit.toolTip = _("CA certificate(s) that signed the server's certificate (PEM).")
        tlsForm.addRow(_("CA certificates:"), self.tlsCAEdit)
        form.addRow(tlsBox)

        self.sendButton = qt.QPushButton(_("Send last export"))
        self.sendButton.enabled = False
        self.sendButton.toolTip = _("Export first; then this sends the files of the last export.")
        form.addRow(self.sendButton)
        self.sendStatus = qt.QPlainTextEdit()
        self.sendStatus.readOnly = True
        self.sendStatus.setMaximumHeight(120)
        self.sendStatus.placeholderText = _("Per-file results and the summary of the last send.")
        form.addRow(self.sendStatus)

    def onDestinationChanged(self, text):
        dicomWeb = self.logic.isDicomWebDestination(text)
        self.callingAETitleEdit.enabled = not dicomWeb
        self.userEdit.enabled = dicomWeb
        self.passwordEdit.enabled = dicomWeb
        self.tlsCertificateEdit.enabled = not dicomWeb
        self.tlsKeyEdit.enabled = not dicomWeb

    def saveSendSettings(self):
        """Remember destination, calling AE title, user and TLS file paths (never the password)."""
        import qt

        settings = qt.QSettings()
        settings.setValue(self.SETTINGS_DESTINATION, self.destinationEdit.text.strip())
        settings.setValue(self.SETTINGS_CALLING_AE_TITLE, self.callingAETitleEdit.text.strip())
        settings.setValue(self.SETTINGS_USER, self.userEdit.text.strip())
        settings.setValue(self.SETTINGS_TLS_CERTIFICATE, self.tlsCertificateEdit.currentPath)
        settings.setValue(self.SETTINGS_TLS_KEY, self.tlsKeyEdit.currentPath)
        settings.setValue(self.SETTINGS_TLS_CA, self.tlsCAEdit.currentPath)

    def onSend(self):
        import qt

        from encapsulated_stl.errors import EncapsulatedSTLError

        files = [f for f in self.lastExportedFiles if os.path.isfile(f)]
        if not files:
            slicer.util.errorDisplay(_("Nothing to send: export a segmentation or model first "
                                       "(the files of the last export are gone)."), _("Send to PACS"))
            return
        destination = self.destinationEdit.text.strip()
        dicomWeb = self.logic.isDicomWebDestination(destination)
        user = self.userEdit.text.strip() if dicomWeb else ""
        secret = self.passwordEdit.text if dicomWeb else ""
        options = dict(
            callingAETitle=None if dicomWeb else self.callingAETitleEdit.text.strip() or None,
            user=user or None,
            password=secret if user else None,
            token=None if user else secret or None,
            tlsCertificate=None if dicomWeb else self.tlsCertificateEdit.currentPath or None,
            tlsKey=None if dicomWeb else self.tlsKeyEdit.currentPath or None,
            tlsCACertificates=self.tlsCAEdit.currentPath or None,
        )
        if not ensurePacsPackages(dicomWeb):
            slicer.util.errorDisplay(_("Sending needs the Python package '{requirement}', which is not installed.").format(
                requirement=pacsRequirement(dicomWeb)), _("Send to PACS"))
            return
        self.sendStatus.setPlainText("")

        def showResult(result):
            self.sendStatus.appendPlainText(result.line())
            slicer.app.processEvents()

        report, problem = None, None
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            report = self.logic.sendFiles(files, destination, onResult=showResult, **options)
        except EncapsulatedSTLError as error:  # bad destination, TLS file...: shown, never raised into Qt
            problem = str(error)
        except Exception as error:
            logging.exception("Send to PACS failed")
            problem = f"unexpected error: {error}"
        finally:
            qt.QApplication.restoreOverrideCursor()
        if report is None:
            self.sendStatus.appendPlainText(f"not sent: {problem}")
            slicer.util.errorDisplay(_("Send to PACS failed: {problem}").format(problem=problem), _("Send to PACS"))
            return
        self.saveSendSettings()
        self.sendStatus.appendPlainText(report.summary())
        slicer.util.showStatusMessage(report.summary(), 5000)
        if not report.ok:
            failed = report.failed
            reasons = sorted({r.message for r in failed if r.message})
            slicer.util.warningDisplay(
                f"{report.summary()}.\n\n" + "\n".join(reasons[:5]), _("Send to PACS"))

    def onNodeChanged(self, node):
        isSegmentation = node is not None and node.IsA("vtkMRMLSegmentationNode")
        self.segmentsSelector.setSegmentationNode(node if isSegmentation else None)
        self.segmentsSelector.enabled = isSegmentation
        self.segmentsCombo.enabled = isSegmentation
        origins = self.logic.loadedFrom(node) if node is not None else []
        # new versions of OBJ models are not written yet (see createDatasets)
        loaded = bool(origins) and all(origins) and "OBJ" not in self.logic.loadedFormats(node)
        self.versionCombo.enabled = loaded
        self.versionCombo.currentIndex = 1 if loaded else 0
        if isSegmentation:
            reference = node.GetNodeReference(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole())
            if reference is not None and reference.IsA("vtkMRMLScalarVolumeNode"):
                self.referenceSelector.setCurrentNode(reference)

    def onExport(self):
        node = self.nodeSelector.currentNode()
        if node is None:
            return
        segmentIds = list(self.segmentsSelector.selectedSegmentIDs()) or None
        mergeSegments, fileFormat = self.SEGMENTS_CHOICES[self.segmentsCombo.currentIndex if self.segmentsCombo.enabled else 0]
        metadata = dict(
            fileFormat=fileFormat,
            newVersion=self.VERSION_PURPOSES[self.versionCombo.currentIndex] if self.versionCombo.enabled else None,
            content_description=self.descriptionEdit.text or None,
            series_description=self.seriesDescriptionEdit.text or None,
            usage=self.usageCombo.currentText or None,
            laterality=self.lateralityCombo.currentText or None,
            units=self.unitsCombo.currentText,
        )
        with slicer.util.tryWithErrorDisplay(_("Export to Encapsulated STL failed."), waitCursor=True):
            if self.toDatabaseCheck.checked:
                files = self.logic.exportToDatabase(node, segmentIds, self.referenceSelector.currentNode(),
                                                    mergeSegments=mergeSegments, **metadata)
            else:
                files = self.logic.exportNode(node, segmentIds, self.referenceSelector.currentNode(),
                                              self.folderButton.directory, mergeSegments=mergeSegments, **metadata)
            self.lastExportedFiles = list(files)
            self.sendButton.enabled = True
            self.sendButton.text = _("Send last export ({count} file(s))").format(count=len(files))
            slicer.util.showStatusMessage(_("Wrote {count} DICOM object(s).").format(count=len(files)), 5000)
            for message in self.logic.messages:
                logging.info(message)
            if self.logic.notices:
                slicer.util.warningDisplay("\n\n".join(self.logic.notices), windowTitle=_("Encapsulated STL export"))

    #: The "Store as" choices: a new model, or a new version with its CID 7062 purpose.
    VERSION_PURPOSES = (None, "edited", "component")
    #: The "Segments" choices: (merge segments, file format).
    SEGMENTS_CHOICES = ((False, "stl"), (True, "stl"), (False, "obj"))

    def onLoad(self):
        import qt

        path = qt.QFileDialog.getOpenFileName(None, _("Load Encapsulated STL"), "", _("DICOM (*.dcm *);;All files (*)"))
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("Loading the Encapsulated STL or OBJ failed."), waitCursor=True):
            self.logic.loadFiles([path], asSegmentation=self.loadAsSegmentationCheck.checked)

    def cleanup(self):
        """Called by Slicer before the module is unloaded: drop the Qt connections."""
        self.nodeSelector.disconnect("currentNodeChanged(vtkMRMLNode*)", self.onNodeChanged)
        self.exportButton.disconnect("clicked(bool)", self.onExport)
        self.loadButton.disconnect("clicked(bool)", self.onLoad)
        self.sendButton.disconnect("clicked(bool)", self.onSend)
        self.destinationEdit.disconnect("textChanged(QString)", self.onDestinationChanged)


#
# Logic
#


class EncapsulatedSTLLogic(ScriptedLoadableModuleLogic):
    """Segmentation / model nodes <-> Encapsulated STL objects, for the GUI, the DICOM
    plugin and the Python console.

    Console example::

        logic = slicer.util.getModuleLogic("EncapsulatedSTL")  # or EncapsulatedSTLLogic()
        files = logic.exportNode(getNode("Segmentation"), outputDirectory="/tmp/models",
                                 usage="planning", laterality="L")
        node = logic.loadFile(files[0])
        report = logic.sendFiles(files, "ORTHANC@pacs.example.org:4242", callingAETitle="SLICER")
        print(report.summary())

    Errors in the input (an empty segment, no closed surface, an unwritable folder)
    raise ``encapsulated_stl.EncapsulatedSTLError`` with a message for the user.
    ``messages`` keeps what the last export decided about geometry and source series;
    ``notices`` what the user must be told about it (patient and study kept from the
    source images over other ones given, a series number already used in the study).
    """

    def __init__(self, parent=None):
        ScriptedLoadableModuleLogic.__init__(self, parent)
        self.messages = []
        self.notices = []

    # -- source series ---------------------------------------------------------

    def referenceVolumeFor(self, node):
        """The volume a segmentation was made on (reference geometry), or for a model the
        scene's volume holding the instances its subject hierarchy item references."""
        if node.IsA("vtkMRMLSegmentationNode"):
            reference = node.GetNodeReference(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole())
            if reference is not None and reference.IsA("vtkMRMLScalarVolumeNode"):
                return reference
            return None
        referenced = set(self._referencedInstanceUIDs(node))
        if not referenced:
            return None
        scene = node.GetScene()
        for index in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
            volume = scene.GetNthNodeByClass(index, "vtkMRMLScalarVolumeNode")
            uids = set((volume.GetAttribute("DICOM.instanceUIDs") or "").split())
            if uids & referenced:
                return volume
        return None

    def _referencedInstanceUIDs(self, node):
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(node.GetScene())
        itemID = shNode.GetItemByDataNode(node)
        if not itemID:
            return []
        name = slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMReferencedInstanceUIDsAttributeName()
        return (shNode.GetItemAttribute(itemID, name) or "").split()

    def sourceSeriesFor(self, node, referenceVolumeNode=None):
        """``(SourceSeries or None, reference volume or None, explanation)``.

        The instances come from the reference volume's ``DICOM.instanceUIDs`` (or, for a
        model without one, its subject hierarchy references), the files from
        ``slicer.dicomDatabase``.  Raises ``EncapsulatedSTLError`` when those files are
        damaged: a model exported without them would silently lose its source.
        """
        from encapsulated_stl.series.source_series import scan_series

        volume = referenceVolumeNode or self.referenceVolumeFor(node)
        if volume is not None:
            uids = (volume.GetAttribute("DICOM.instanceUIDs") or "").split()
            origin = f"volume '{volume.GetName()}'"
            if not uids:
                return None, volume, f"the reference {origin} was not loaded from DICOM (no DICOM.instanceUIDs)"
        else:
            uids = self._referencedInstanceUIDs(node)
            origin = f"the DICOM references of '{node.GetName()}'"
            if not uids:
                return None, None, f"'{node.GetName()}' has no reference volume and no DICOM references"
        database = getattr(slicer, "dicomDatabase", None)
        if database is None:
            return None, volume, "there is no DICOM database to find the source images in"
        files = [database.fileForInstance(uid) for uid in uids]
        missing = sum(1 for f in files if not f)
        if missing:
            return None, volume, f"{missing} of the {len(uids)} source instances of {origin} are not in the DICOM database"
        found = scan_series(files)  # raises for a damaged file, as check_usable below
        if len(found) == 1:
            found[0].check_usable()  # a damaged file would be missing from the references
        if len(found) != 1:
            return None, volume, f"the source instances of {origin} are not one readable series"
        return found[0], volume, f"source series {found[0].series_instance_uid} ({len(found[0])} instances) from {origin}"

    # -- meshes ----------------------------------------------------------------

    def worldSurfaces(self, node, segmentIds=None):
        """``encapsulated_stl.inputs.surfaces.Surface`` of a model, or of each chosen
        segment, in world RAS mm.

        Segments: the closed surface as displayed (the segmentation's conversion
        parameters), with the segmentation's parent transforms applied.  Models: the
        surface through the model's parent transforms.
        """
        from encapsulated_stl.errors import EncapsulatedSTLError
        from encapsulated_stl.inputs.surfaces import Surface
        from encapsulated_stl.mesh.polydata import triangles_from_polydata

        if node.IsA("vtkMRMLModelNode"):
            polyData = node.GetPolyData()
            if polyData is None or polyData.GetNumberOfPoints() == 0:
                raise EncapsulatedSTLError(f"model '{node.GetName()}' has no surface to export")
            toWorld = vtk.vtkGeneralTransform()
            slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(node.GetParentTransformNode(), None, toWorld)
            triangles = triangles_from_polydata(polyData)
            if len(triangles) == 0:
                raise EncapsulatedSTLError(f"model '{node.GetName()}' has no triangles to export")
            world = _transformPoints(toWorld, triangles.reshape(-1, 3)).reshape(-1, 3, 3)
            display = node.GetDisplayNode()
            return [Surface(node.GetName(), world, tuple(display.GetColor()) if display else None,
                            display.GetOpacity() if display else None)]

        if not node.IsA("vtkMRMLSegmentationNode"):
            raise EncapsulatedSTLError(f"'{node.GetName()}' is neither a segmentation nor a model")
        segmentation = node.GetSegmentation()
        allIds = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
        segmentIds = list(segmentIds) if segmentIds else allIds
        unknown = [s for s in segmentIds if s not in allIds]
        if unknown:
            raise EncapsulatedSTLError(f"segmentation '{node.GetName()}' has no segment {', '.join(unknown)}")
        if not segmentIds:
            raise EncapsulatedSTLError(f"segmentation '{node.GetName()}' has no segments to export")
        if not node.CreateClosedSurfaceRepresentation():
            raise EncapsulatedSTLError(
                f"no closed surface can be made for segmentation '{node.GetName()}'; "
                "check its source representation and conversion parameters")
        display = node.GetDisplayNode()
        surfaces = []
        for segmentId in segmentIds:
            segment = segmentation.GetSegment(segmentId)
            polyData = vtk.vtkPolyData()
            ok = slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentClosedSurfaceRepresentation(
                node, segmentId, polyData, True)
            triangles = triangles_from_polydata(polyData) if ok else np.zeros((0, 3, 3))
            if len(triangles) == 0:
                raise EncapsulatedSTLError(
                    f"segment '{segment.GetName()}' of '{node.GetName()}' is empty: nothing to print; "
                    "paint it or leave it out")
            surfaces.append(Surface(segment.GetName(), triangles, tuple(segment.GetColor()),
                                    display.GetSegmentOpacity3D(segmentId) if display else None))
        return surfaces

    @staticmethod
    def shownVolume(volume):
        """``encapsulated_stl.series.acquisition_geometry.ShownVolume``: how the volume's
        voxels are placed in the world (IJK-to-RAS and every parent transform)."""
        from encapsulated_stl.series.acquisition_geometry import ShownVolume

        if volume is None or volume.GetImageData() is None:
            return None
        ijkToRAS = vtk.vtkMatrix4x4()
        volume.GetIJKToRASMatrix(ijkToRAS)
        ijkToRAS = _numpyFromMatrix(ijkToRAS)
        parent = volume.GetParentTransformNode()
        toWorld = vtk.vtkGeneralTransform()
        slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(parent, None, toWorld)
        fromWorld = vtk.vtkGeneralTransform()
        slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, parent, fromWorld)
        voxels = slicer.util.arrayFromVolume(volume)

        def worldFromIndex(ijk):
            local = ijk @ ijkToRAS[:3, :3].T + ijkToRAS[:3, 3]
            return _transformPoints(toWorld, local) if parent is not None else local

        def indexFromWorld(ras):
            local = _transformPoints(fromWorld, ras) if parent is not None else ras
            return np.linalg.solve(ijkToRAS[:3, :3], (local - ijkToRAS[:3, 3]).T).T

        return ShownVolume(voxels.shape, worldFromIndex, indexFromWorld, lambda k: voxels[k])

    # -- versions ----------------------------------------------------------------

    def loadedFrom(self, node, segmentIds=None):
        """``[(SOP Instance UID, file) or None]``: the Encapsulated STL object the node (or
        each chosen segment) was loaded from, in the order of :meth:`worldSurfaces`."""
        def origin(uid, path):
            return (uid, path or None) if uid else None

        if node.IsA("vtkMRMLModelNode"):
            return [origin(node.GetAttribute(self.LOADED_FROM_UID), node.GetAttribute(self.LOADED_FROM_FILE))]
        segmentation = node.GetSegmentation()
        segmentIds = list(segmentIds) if segmentIds else [
            segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
        found = []
        for segmentId in segmentIds:
            segment = segmentation.GetSegment(segmentId)
            uid, path = "", ""
            if segment is not None:
                uid = self._segmentTag(segment, self.LOADED_FROM_UID)
                path = self._segmentTag(segment, self.LOADED_FROM_FILE)
            found.append(origin(uid, path))
        return found

    def loadedFormats(self, node):
        """The formats ("STL", "OBJ") of the objects a node's surfaces were loaded from, each once."""
        if node.IsA("vtkMRMLModelNode"):
            formats = [node.GetAttribute(self.LOADED_FROM_FORMAT) or ""]
        else:
            segmentation = node.GetSegmentation()
            formats = [self._segmentTag(segmentation.GetNthSegment(i), self.LOADED_FROM_FORMAT)
                       for i in range(segmentation.GetNumberOfSegments())]
        return [f for f in dict.fromkeys(formats) if f]

    @staticmethod
    def _segmentTag(segment, key):
        value = vtk.reference("")  # vtkSegment.GetTag fills a std::string argument
        return str(value) if segment.GetTag(key, value) else ""

    def earlierModel(self, uid, path=None):
        """The Encapsulated STL object ``uid`` as read from the DICOM database, or from the
        file it was loaded from; raises ``EncapsulatedSTLError`` when neither has it."""
        from encapsulated_stl.errors import EncapsulatedSTLError
        from encapsulated_stl.iod.model import read_encapsulated_model

        database = getattr(slicer, "dicomDatabase", None)
        candidates = [database.fileForInstance(uid) if database is not None else "", path]
        for candidate in candidates:
            if candidate and os.path.isfile(candidate):
                model = read_encapsulated_model(candidate)
                if model.sop_instance_uid == uid:
                    return model
        raise EncapsulatedSTLError(
            f"the object {uid} it was loaded from is neither in the DICOM database nor in its file any more; "
            "export it as a new model")

    # -- export ----------------------------------------------------------------

    def createDatasets(self, node, segmentIds=None, referenceVolumeNode=None, mergeSegments=False,
                       newStudy=None, newVersion=None, fileFormat="stl", **metadata):
        """Encapsulated STL datasets for a segmentation (one per segment, or merged) or a model.

        ``fileFormat="obj"`` writes one Encapsulated OBJ instead, every segment a group
        named after it, and an Encapsulated MTL with each segment's colour and opacity
        (the OBJ dataset first); the geometry is the same as the STL objects'.

        ``metadata`` takes the fields of ``encapsulated_stl.iod.encapsulate.ModelMetadata``
        (units, content_description, usage, laterality, series_description,
        series_number, burned_in_annotation, model_mirroring, model_modification...).
        ``newStudy`` (``NewStudy``) gives patient and study when no source series is
        found; when one is found the objects keep its patient and study, and values of
        ``newStudy`` that differ from them are reported in :attr:`notices`.  Without a
        series number, or with one already used in the study, the next free number is used.
        The work is ``encapsulated_stl.inputs.surfaces.surface_models``'s.

        ``newVersion`` ("edited" or "component", CID 7062) stores a node (or each segment)
        loaded from Encapsulated STL objects as a new version of the object it came from
        (:meth:`versionDatasets`).
        """
        from encapsulated_stl.errors import EncapsulatedSTLError

        fileFormat = (fileFormat or "stl").strip().lower()
        if fileFormat not in ("stl", "obj"):
            raise EncapsulatedSTLError(f"unknown model format '{fileFormat}': stl or obj")
        if newVersion and fileFormat == "obj":
            raise EncapsulatedSTLError(_("new versions of OBJ models are not written yet: "
                                         "export it as a new model (Version: new)"))
        if mergeSegments and fileFormat == "obj":
            raise EncapsulatedSTLError(_("merged segments are one STL object; an OBJ keeps every segment as a "
                                         "group of its own: choose one of the two"))
        if newVersion:
            return self.versionDatasets(node, segmentIds, mergeSegments, newVersion, newStudy, **metadata)
        from encapsulated_stl.inputs.surfaces import merged_surface, surface_models
        from encapsulated_stl.iod import codes
        from encapsulated_stl.iod.encapsulate import ModelMetadata, NewStudy
        from encapsulated_stl.iod.values import fitted

        self.messages, self.notices = [], []
        base = ModelMetadata(**metadata)
        codes.units_key(base.units)  # before any surface is made
        source, volume, explanation = self.sourceSeriesFor(node, referenceVolumeNode)
        self.messages.append(explanation)
        study = newStudy or NewStudy()
        if source is None:
            self.messages.append("no source series: the objects get a new study and Frame of Reference")
            if not study.patient_id:
                study = NewStudy(**{**study.__dict__, **self.patientOfNode(node)})
        else:
            self._noticeStudyDifferences(study, source)
        surfaces = self.worldSurfaces(node, segmentIds)
        if mergeSegments and len(surfaces) > 1 and fileFormat == "stl":
            surfaces = [merged_surface(surfaces, node.GetName())]
        studyUID = source.study_instance_uid if source is not None else study.study_instance_uid
        base = base.replace(series_number=self._freeSeriesNumber(studyUID, base.series_number))
        if base.series_description is None:
            base = base.replace(series_description=fitted(node.GetName(), "SeriesDescription"))

        def explain(sentence):
            self.messages.append(f"'{volume.GetName()}': {sentence}")
            logging.info(f"Encapsulated STL geometry of '{volume.GetName()}': {sentence}")

        # a segmentation's surfaces are made here; a model node's mesh was made elsewhere
        return surface_models(surfaces, source, self.shownVolume(volume), base, study,
                              made_here=node.IsA("vtkMRMLSegmentationNode"), notice=self.notices.append,
                              explain=explain, file_format=fileFormat)

    def versionDatasets(self, node, segmentIds=None, mergeSegments=False, purpose="edited", newStudy=None,
                        **metadata):
        """New versions of the objects a node's surfaces were loaded from
        (``encapsulated_stl.inputs.surfaces.surface_versions``), one series: in their study
        and Frame of Reference, naming them in Predecessor Documents Sequence with the CID
        7062 ``purpose``.  Merged segments are one version of all their objects."""
        from encapsulated_stl.errors import EncapsulatedSTLError
        from encapsulated_stl.inputs.surfaces import merged_surface, surface_versions
        from encapsulated_stl.iod import codes
        from encapsulated_stl.iod.encapsulate import ModelMetadata

        self.messages, self.notices = [], []
        codes.predecessor_purpose(purpose)
        base = ModelMetadata(**{"units": None, **metadata})
        if base.units is not None:
            codes.units_key(base.units)
        origins = self.loadedFrom(node, segmentIds)
        surfaces = self.worldSurfaces(node, segmentIds)
        missing = [surface.name for surface, origin in zip(surfaces, origins) if origin is None]
        if missing:
            raise EncapsulatedSTLError(
                f"'{missing[0]}' was not loaded from an Encapsulated STL object, so it has no earlier version; "
                "export it as a new model")
        earlier = [[self.earlierModel(*origin)] for origin in origins]
        fromObj = [surface.name for surface, models in zip(surfaces, earlier) if models[0].file_format == "OBJ"]
        if fromObj:
            # a new version would be an STL naming an OBJ as its predecessor, losing the
            # groups and materials: refused until OBJ versions are written as OBJ
            raise EncapsulatedSTLError(_(
                "'{name}' was loaded from an Encapsulated OBJ object: new versions of OBJ models are not "
                "written yet; export it as a new model (Version: new)").format(name=fromObj[0]))
        if mergeSegments and len(surfaces) > 1:
            surfaces = [merged_surface(surfaces, node.GetName())]
            earlier = [list({m.sop_instance_uid: m for models in earlier for m in models}.values())]
        first = earlier[0][0]
        if newStudy is not None:
            self._noticeStudyDifferences(newStudy, first.dataset)
        base = base.replace(series_number=self._freeSeriesNumber(first.study_instance_uid, base.series_number))
        self.messages.append(f"{purpose} version of {sum(len(e) for e in earlier)} loaded object(s) in study "
                             f"{first.study_instance_uid}")
        return surface_versions(surfaces, earlier, purpose, base, notice=self.notices.append)

    #: What Slicer's DICOMPlugin.addSeriesInSubjectHierarchy shows for an empty value: the
    #: dialog then offers these words, which mean "empty", not another patient or study.
    EMPTY_VALUE_PLACEHOLDERS = ("No name", "No study description")

    def _noticeStudyDifferences(self, study, source):
        from encapsulated_stl.iod.encapsulate import study_differences

        header = source.datasets[0] if hasattr(source, "datasets") else source
        placeholders = (*self.EMPTY_VALUE_PLACEHOLDERS, f"Patient-{header.get('StudyInstanceUID', '')}")
        different = study_differences(study, header, placeholders)
        if different:
            self.notices.append(_(
                "The models keep the patient and study of their source images: {values}. They are made from "
                "those images and share their Frame of Reference, so they are filed with them; the other values "
                "given for the export were not used.").format(values=", ".join(different)))

    def patientOfNode(self, node):
        """``patient_id`` and ``patient_name`` of the patient item the node sits under in the
        subject hierarchy (its DICOM Patient ID, as the user gave it), or nothing: a model
        without a source needs a Patient ID, and none is invented."""
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        constants = slicer.vtkMRMLSubjectHierarchyConstants
        item = shNode.GetItemByDataNode(node)
        patient = shNode.GetItemAncestorAtLevel(item, constants.GetDICOMLevelPatient()) if item else 0
        if not patient:
            return {}
        patientID = shNode.GetItemAttribute(patient, constants.GetDICOMPatientIDAttributeName()) or ""
        found = {"patient_id": patientID.strip()} if patientID.strip() else {}
        name = shNode.GetItemAttribute(patient, constants.GetDICOMPatientNameAttributeName()) or ""
        if found and name.strip():
            found["patient_name"] = name.strip()
        return found

    def studyInstanceUIDOfItem(self, itemID):
        """The Study Instance UID of the study item above a subject hierarchy item, or None."""
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        constants = slicer.vtkMRMLSubjectHierarchyConstants
        studyItem = shNode.GetItemAncestorAtLevel(itemID, constants.GetDICOMLevelStudy())
        uid = shNode.GetItemUID(studyItem, constants.GetDICOMUIDName()) if studyItem else ""
        return uid or None

    def seriesNumbersInStudy(self, studyUID):
        """Series Numbers used in a study: by its series in the DICOM database and by the
        series items under its study item in the subject hierarchy."""
        numbers = set()
        if not studyUID:
            return numbers
        database = getattr(slicer, "dicomDatabase", None)
        if database is not None:
            for seriesUID in database.seriesForStudy(studyUID):
                files = database.filesForSeries(seriesUID, 1)
                value = database.fileValue(files[0], "0020,0011") if files else ""
                if value.strip().lstrip("+-").isdigit():
                    numbers.add(int(value))
        if hasattr(slicer, "vtkMRMLSubjectHierarchyNode") and slicer.mrmlScene is not None:
            shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
            constants = slicer.vtkMRMLSubjectHierarchyConstants
            studyItem = shNode.GetItemByUID(constants.GetDICOMUIDName(), studyUID)
            if studyItem:
                children = vtk.vtkIdList()
                shNode.GetItemChildren(studyItem, children, True)
                for index in range(children.GetNumberOfIds()):
                    value = shNode.GetItemAttribute(children.GetId(index), constants.GetDICOMSeriesNumberAttributeName())
                    if value.strip().lstrip("+-").isdigit():
                        numbers.add(int(value))
        return numbers

    def nextSeriesNumber(self, studyUID):
        """One more than the highest Series Number used in the study (1 in a new study)."""
        from encapsulated_stl.iod.encapsulate import free_series_number

        return free_series_number(self.seriesNumbersInStudy(studyUID))

    def _freeSeriesNumber(self, studyUID, wanted):
        if wanted is None:
            return self.nextSeriesNumber(studyUID)
        used = self.seriesNumbersInStudy(studyUID)
        if wanted not in used:
            return wanted
        chosen = self.nextSeriesNumber(studyUID)
        self.notices.append(_("Series Number {wanted} is already used by another series of this study; "
                              "the models were written as series {chosen}.").format(wanted=wanted, chosen=chosen))
        return chosen

    def writeDatasets(self, datasets, outputDirectory):
        """Write every dataset as ``<SOP Instance UID>.dcm``; all or nothing."""
        from encapsulated_stl.errors import OutputError
        from encapsulated_stl.iod.encapsulate import save_datasets

        directory = os.fspath(outputDirectory)
        if not os.path.isdir(directory):
            raise OutputError("the output folder does not exist; create it or choose another", directory)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise OutputError("the output folder is not writable; choose another", directory)
        return [str(path) for path in save_datasets(
            (dataset, os.path.join(directory, f"{dataset.SOPInstanceUID}.dcm")) for dataset in datasets)]

    def exportNode(self, node, segmentIds=None, referenceVolumeNode=None, outputDirectory=None,
                   mergeSegments=False, newStudy=None, **metadata):
        """Export a segmentation or model node; returns the written file paths.

        Parameters
        ----------
        node: vtkMRMLSegmentationNode or vtkMRMLModelNode
        segmentIds: segment IDs to export (default: all)
        referenceVolumeNode: the source CT/MR volume (default: the segmentation's
            reference geometry volume, or the volume a model's DICOM references name)
        outputDirectory: existing writable folder
        mergeSegments: one object with all segments instead of one per segment
        metadata: fileFormat="obj" (one Encapsulated OBJ + MTL, see :meth:`createDatasets`),
            and ModelMetadata fields (units="mm", usage="planning", laterality="L", ...)
        """
        from encapsulated_stl.errors import OutputError

        if outputDirectory is None:
            raise OutputError("give outputDirectory, the folder to write the objects to")
        datasets = self.createDatasets(node, segmentIds, referenceVolumeNode, mergeSegments, newStudy, **metadata)
        return self.writeDatasets(datasets, outputDirectory)

    def exportToDatabase(self, node, segmentIds=None, referenceVolumeNode=None, mergeSegments=False, newStudy=None,
                         **metadata):
        """Export into the DICOM database as Slicer's Export to DICOM dialog does: write to a
        temporary folder, add the files with copying (so the database owns them), remove
        the folder.  Returns the database's files; raises ``EncapsulatedSTLError`` when
        the database is missing or did not take every object."""
        import shutil
        import tempfile

        from DICOMLib import DICOMUtils

        from encapsulated_stl.errors import EncapsulatedSTLError

        database = getattr(slicer, "dicomDatabase", None)
        if database is None or not database.isOpen:
            raise EncapsulatedSTLError(_("there is no open DICOM database: open one in the DICOM module, "
                                         "or export to a folder"))
        datasets = self.createDatasets(node, segmentIds, referenceVolumeNode, mergeSegments, newStudy, **metadata)
        folder = tempfile.mkdtemp(prefix="EncapsulatedSTL-", dir=slicer.app.temporaryPath)
        try:
            self.writeDatasets(datasets, folder)
            imported = DICOMUtils.importDicom(folder, database, copyFiles=True)
            files = [database.fileForInstance(str(ds.SOPInstanceUID)) for ds in datasets]
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        missing = sum(1 for path in files if not path or not os.path.isfile(path))
        if not imported or missing:
            raise EncapsulatedSTLError(_("the DICOM database did not take {missing} of the {count} objects; "
                                         "check the database folder and its free space, or export to a folder").format(
                                             missing=missing or len(files), count=len(files)))
        return files

    # -- send to a PACS ----------------------------------------------------------

    @staticmethod
    def isDicomWebDestination(destination):
        """True for a DICOMweb URL (``http://`` or ``https://``), False for ``AET@HOST:PORT``."""
        from encapsulated_stl.pacs.peers import is_dicomweb_url

        return is_dicomweb_url(destination)

    @staticmethod
    def pacsPeer(destination, callingAETitle=None, token=None, user=None, password=None,
                 tlsCertificate=None, tlsKey=None, tlsCACertificates=None, timeout=None):
        """The ``encapsulated_stl.pacs.peers`` peer a destination names
        (``peer_for_destination``, the same words).

        ``destination`` is ``AET@HOST:PORT`` (a DICOM node: C-STORE, with
        ``callingAETitle`` and optional DICOM TLS files) or a DICOMweb service root URL
        (STOW-RS, with a bearer ``token`` or ``user`` and ``password``, and optionally
        ``tlsCACertificates`` to verify an https server).  Raises
        ``encapsulated_stl.EncapsulatedSTLError`` with a message for the user.
        """
        from encapsulated_stl.pacs.peers import peer_for_destination

        return peer_for_destination(destination, callingAETitle, token, user, password,
                                    tlsCertificate, tlsKey, tlsCACertificates, timeout)

    def sendFiles(self, files, destination, callingAETitle=None, token=None, user=None, password=None,
                  tlsCertificate=None, tlsKey=None, tlsCACertificates=None, timeout=None, onResult=None):
        """Send files (for example what :meth:`exportNode` returned) to a PACS.

        The same code as ``encapsulated-stl send``: C-STORE over one association that
        proposes the Encapsulated STL, OBJ and MTL SOP classes explicitly, or STOW-RS.
        See :meth:`pacsPeer` for the destination and options.  ``onResult`` is called
        with each file's ``FileResult`` as soon as it is known.

        Returns the ``encapsulated_stl.pacs.peers.TransferReport``: ``report.ok``, one
        ``result.line()`` per file in ``report.results``, and ``report.summary()``.  A
        server that cannot be reached or refuses fails the files (with the reason in
        each result), it does not raise; a bad destination or a missing file raises
        ``encapsulated_stl.EncapsulatedSTLError``.  The files are only read.
        """
        from encapsulated_stl.errors import EncapsulatedSTLError
        from encapsulated_stl.pacs.transfer import send_files

        files = [os.fspath(f) for f in (files or [])]
        if not files:
            raise EncapsulatedSTLError("nothing to send: export a segmentation or model first")
        peer = self.pacsPeer(destination, callingAETitle, token, user, password,
                             tlsCertificate, tlsKey, tlsCACertificates, timeout)
        report = send_files(files, peer, on_result=onResult)
        for warning in report.warnings:  # an OBJ model sent without its MTL objects
            logging.warning(f"Encapsulated STL send: {warning}")
        logging.info(f"Encapsulated STL send: {report.summary()}")
        return report

    def exportAndSend(self, node, destination, outputDirectory=None, segmentIds=None, referenceVolumeNode=None,
                      mergeSegments=False, newStudy=None, callingAETitle=None, token=None, user=None,
                      password=None, tlsCertificate=None, tlsKey=None, tlsCACertificates=None, timeout=None,
                      onResult=None, **metadata):
        """:meth:`exportNode` then :meth:`sendFiles`; returns ``(files, report)``.

        The destination is checked before anything is exported.  Without
        ``outputDirectory`` the files go to a new temporary folder (kept, so they can
        be sent again).
        """
        import tempfile

        sendOptions = dict(callingAETitle=callingAETitle, token=token, user=user, password=password,
                           tlsCertificate=tlsCertificate, tlsKey=tlsKey, tlsCACertificates=tlsCACertificates,
                           timeout=timeout)
        self.pacsPeer(destination, **sendOptions)
        if outputDirectory is None:
            outputDirectory = tempfile.mkdtemp(prefix="EncapsulatedSTL-")
        files = self.exportNode(node, segmentIds, referenceVolumeNode, outputDirectory, mergeSegments, newStudy,
                                **metadata)
        return files, self.sendFiles(files, destination, onResult=onResult, **sendOptions)

    # -- import ----------------------------------------------------------------

    @staticmethod
    def examineModel(path):
        """The model's description without checking every coordinate (for the DICOM
        browser's listing); raises for an object that cannot be loaded."""
        from encapsulated_stl.iod.model import read_encapsulated_model

        return read_encapsulated_model(path, check_values=False)

    def readModels(self, paths):
        """``encapsulated_stl.iod.model.EncapsulatedModel`` of each file (raises for broken ones)."""
        from encapsulated_stl.iod.model import read_encapsulated_model

        return [read_encapsulated_model(path) for path in paths]

    @staticmethod
    def polyDataRAS(model, triangles=None):
        """The model's surface (or ``triangles`` of it, in its units and LPS: an OBJ group's)
        in world RAS millimetres, identical vertices shared (as vtkSTLReader makes it,
        faster); undeclared units are taken as millimetres."""
        from encapsulated_stl.series.acquisition_geometry import ras_from_lps
        from encapsulated_stl.mesh.polydata import polydata_from_triangles

        millimetres = model.millimetres_per_unit
        if millimetres is None:
            logging.warning(f"{model.path}: {model.units_problem}; millimetres assumed")
            millimetres = 1.0
        triangles = model.mesh.triangles if triangles is None else triangles
        return polydata_from_triangles(triangles, lambda lps: ras_from_lps(lps) * millimetres)

    def materialsFor(self, model, libraryPaths=None):
        """``encapsulated_stl.obj.model.ModelMaterials`` of an Encapsulated OBJ model.

        The Encapsulated MTL objects are ``libraryPaths`` when given; else found in the
        DICOM database: those the model references by SOP Instance UID
        (``fileForInstance``), in whatever series they are, or for a model that
        references none (dcm4che's, Orthanc's) the MTL objects of its study, of which
        ``materials_of`` takes those of its own series first.  What the database does
        not have is looked for beside the model's file.  A library that cannot be read
        is a note, and its materials are missing.
        """
        from encapsulated_stl.errors import EncapsulatedSTLError
        from encapsulated_stl.obj.model import libraries_beside, materials_of, read_material_library

        notes = []
        referenced = [uid for _class, uid, _uri in model.referenced_documents if uid]
        if libraryPaths is None:
            libraryPaths = []
            database = getattr(slicer, "dicomDatabase", None)
            if database is not None and referenced:
                libraryPaths = [database.fileForInstance(uid) for uid in referenced]
            elif database is not None and model.study_instance_uid:
                for series in database.seriesForStudy(model.study_instance_uid):
                    libraryPaths += [path for path in database.filesForSeries(series)
                                     if database.fileValue(path, "0008,0016") == ENCAPSULATED_MTL_SOP_CLASS_UID]
        libraries = {}
        for path in dict.fromkeys(p for p in libraryPaths if p):
            try:
                library = read_material_library(path)
            except (EncapsulatedSTLError, OSError) as error:
                notes.append(_("the material library {path} cannot be read: {problem}").format(path=path, problem=error))
                continue
            libraries.setdefault(library.sop_instance_uid, library)
        incomplete = set(referenced) - set(libraries) if referenced else not libraries
        if incomplete and model.path is not None:
            for library in libraries_beside(model.path):
                libraries.setdefault(library.sop_instance_uid, library)
        found = materials_of(model, libraries.values())
        found.notes[:0] = notes
        return found

    @staticmethod
    def missingMaterials(model, materials):
        """One sentence naming what of an OBJ model's materials was not found (the
        material library by its ``mtllib`` name and SOP Instance UID), or ""."""
        found = {library.sop_instance_uid for library in materials.libraries}
        absent = [f"'{uri or uid}' ({uid})" for _class, uid, uri in model.referenced_documents if uid and uid not in found]
        if absent:
            return _("material library {names} not found in the DICOM database or beside the model: "
                     "its groups are loaded grey").format(names=", ".join(absent))
        if materials.missing:
            if not model.referenced_documents and not materials.libraries:
                return _("the model names no material library and no Encapsulated MTL object of its series or "
                         "study was found: its groups are loaded grey")
            return _("material(s) {names} defined by no material library found: loaded grey").format(
                names=", ".join(f"'{name}'" for name in materials.missing))
        return ""

    def surfacesOf(self, model, materials=None):
        """``[(name, vtkPolyData in RAS mm, rgb or None, opacity or None)]``: the model's
        one surface, or for an Encapsulated OBJ one per group with its material's colour
        and opacity (``materials``: :meth:`materialsFor`; None finds them)."""
        if not model.groups:
            return [(model.name, self.polyDataRAS(model), model.color, model.opacity)]
        if materials is None:
            materials = self.materialsFor(model)
        surfaces = []
        for index, group in enumerate(model.groups, start=1):
            material = materials.materials.get(group.material) if group.material else None
            name = group.name or (model.name if len(model.groups) == 1 else f"{model.name} {index}")
            surfaces.append((name, self.polyDataRAS(model, group.triangles),
                             material.diffuse if material is not None else None,
                             material.opacity if material is not None else None))
        return surfaces

    def loadModels(self, models, asSegmentation=False, name=None, scene=None, materials=None):
        """Model nodes (one per surface) or one segmentation node (one segment per surface).

        A surface is an Encapsulated STL object, or a group of an Encapsulated OBJ object
        with its material's colour and opacity (``materials``: SOP Instance UID to
        :meth:`materialsFor`'s answer; those not given are found).  A surface without a
        colour is grey for an OBJ group (its material is unknown), bone for an STL.
        ``name`` names the segmentation, or the model node of a single surface."""
        scene = scene or slicer.mrmlScene
        materials = materials or {}
        parts = []
        for model in models:
            default = UNKNOWN_MATERIAL_COLOR if model.groups else (0.9, 0.85, 0.7)
            for surfaceName, polyData, color, opacity in self.surfacesOf(model, materials.get(model.sop_instance_uid)):
                parts.append((model, surfaceName, polyData, color or default, opacity))
        if asSegmentation:
            segmentationNode = scene.AddNewNodeByClass(
                "vtkMRMLSegmentationNode", name or models[0].series_description or models[0].name)
            segmentationNode.CreateDefaultDisplayNodes()
            for model, surfaceName, polyData, color, opacity in parts:
                segmentId = segmentationNode.AddSegmentFromClosedSurfaceRepresentation(
                    polyData, surfaceName, list(color))
                if opacity is not None:
                    segmentationNode.GetDisplayNode().SetSegmentOpacity3D(segmentId, opacity)
                segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
                for key, value in self._origin(model).items():
                    segment.SetTag(key, value)
            return [segmentationNode]
        nodes = []
        for model, surfaceName, polyData, color, opacity in parts:
            nodeName = name if name and len(parts) == 1 else surfaceName
            modelNode = scene.AddNewNodeByClass("vtkMRMLModelNode", nodeName)
            modelNode.SetAndObservePolyData(polyData)
            modelNode.CreateDefaultDisplayNodes()
            display = modelNode.GetDisplayNode()
            display.SetColor(*color)
            if opacity is not None:
                display.SetOpacity(opacity)
            for key, value in self._origin(model).items():
                modelNode.SetAttribute(key, value)
            nodes.append(modelNode)
        return nodes

    #: Node attributes (segment tags for segments) naming the object a surface was loaded
    #: from, so that its export can be a new version of it, and its format (STL, OBJ).
    LOADED_FROM_UID = "EncapsulatedSTL.SOPInstanceUID"
    LOADED_FROM_FILE = "EncapsulatedSTL.File"
    LOADED_FROM_FORMAT = "EncapsulatedSTL.FileFormat"

    def _origin(self, model):
        origin = {}
        if model.sop_instance_uid:
            origin[self.LOADED_FROM_UID] = model.sop_instance_uid
        if model.path is not None:
            origin[self.LOADED_FROM_FILE] = os.fspath(model.path)
        origin[self.LOADED_FROM_FORMAT] = model.file_format
        return origin

    def loadFiles(self, paths, asSegmentation=False, name=None, materialFiles=None):
        """Load Encapsulated STL or OBJ files: model nodes, or one segmentation with a
        segment per object (per group of an OBJ), in RAS millimetres.  An OBJ's materials
        are read from ``materialFiles`` (Encapsulated MTL files) when given, else found
        (:meth:`materialsFor`).  Raises for an object that cannot be loaded."""
        models = self.readModels(paths)
        materials = {}
        for model in models:
            if model.groups:
                found = self.materialsFor(model, materialFiles)
                missing = self.missingMaterials(model, found)
                if missing:
                    logging.warning(f"{model.path}: {missing}")
                materials[model.sop_instance_uid] = found
        return self.loadModels(models, asSegmentation, name, materials=materials)

    def loadFile(self, path, asSegmentation=False):
        """Load one Encapsulated STL file as a model node (or a segmentation) in RAS, mm."""
        return self.loadFiles([path], asSegmentation)[0]


#
# Test (runs inside Slicer: Reload and Test)
#


class EncapsulatedSTLTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        self.setUp()
        self.test_export_and_load_sphere()

    def test_export_and_load_sphere(self):
        import tempfile

        self.delayDisplay("Export a segment and load it back")
        if not ensureHighdicom(askUser=False):
            self.delayDisplay("highdicom could not be installed; test skipped")
            return
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "phantom")
        image = vtk.vtkImageData()
        image.SetDimensions(40, 40, 30)
        image.AllocateScalars(vtk.VTK_SHORT, 1)
        voxels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(30, 40, 40)
        k, j, i = np.mgrid[:30, :40, :40]
        voxels[:] = np.where((i - 20) ** 2 + (j - 20) ** 2 + ((k - 15) * 1.5) ** 2 < 100, 100, 0)
        volume.SetAndObserveImageData(image)
        volume.SetSpacing(1.0, 1.0, 1.5)
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "phantom segmentation")
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        labelmap = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        slicer.modules.volumes.logic().CreateLabelVolumeFromVolume(slicer.mrmlScene, labelmap, volume)
        slicer.util.updateVolumeFromArray(labelmap, (voxels > 50).astype(np.uint8))
        slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelmap, segmentation)
        logic = EncapsulatedSTLLogic()
        folder = tempfile.mkdtemp()
        from encapsulated_stl.iod.encapsulate import NewStudy

        files = logic.exportNode(segmentation, outputDirectory=folder, usage="planning",
                                 newStudy=NewStudy(patient_name="Phantom^SelfTest", patient_id="ESTL-SELFTEST"))
        self.assertEqual(len(files), 1)
        loaded = logic.loadFile(files[0])
        exported = vtk.vtkPolyData()
        segmentId = segmentation.GetSegmentation().GetNthSegmentID(0)
        slicer.modules.segmentations.logic().GetSegmentClosedSurfaceRepresentation(segmentation, segmentId, exported)
        from encapsulated_stl.mesh.polydata import triangles_from_polydata

        expected = triangles_from_polydata(exported)
        actual = triangles_from_polydata(loaded.GetPolyData())
        self.assertEqual(expected.shape, actual.shape)
        self.assertLess(float(np.abs(expected - actual).max()), 1e-3)
        self.delayDisplay("Test passed")
