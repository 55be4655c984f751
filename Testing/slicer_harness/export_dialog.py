"""Slicer's "Export to DICOM" path, reproduced from its C++ for tests.

The dialog and its tag editor are C++ widgets that cannot run here; this module does
what they do, step by step, with the release's own Python plugins:

* :meth:`ExportDialog.open` is qSlicerSubjectHierarchyDICOMPlugin::openDICOMExportDialog
  (Modules/Scripted/DICOMLib/SubjectHierarchyPlugins/qSlicerSubjectHierarchyDICOMPlugin.cxx,
  5.6 lines 477-601): an item that is not under a study under a patient is moved, after
  asking, under the study of an item it references, or a new default patient and study
  (createDefaultPatientItem / createDefaultStudyItem, lines 605-660).
* :meth:`ExportDialog.examine` is qSlicerDICOMExportDialog::examineSelectedItem
  (Widgets/qSlicerDICOMExportDialog.cxx, 5.6 lines 212-330): every registered plugin class is
  instantiated and asked ``examineForExport``; exportables are grouped by plugin and listed
  by the plugin's mean confidence, highest first; the top row is selected.
* :meth:`ExportDialog.select` is onExportableSelectedAtRow + qSlicerDICOMTagEditorWidget::
  setExportables (Widgets/qSlicerDICOMTagEditorWidget.cxx, 5.6 lines 330-540): patient and
  study tags come from the subject hierarchy patient and study items above the item (an
  item not under both is refused), every patient and study tag is set on every exportable,
  and a series tag the plugin offers is replaced by the series item's ``DICOM.<tag>``
  attribute when the item has one.
* :meth:`ExportDialog.edit` is tagsTableCellChanged (lines 620-652): a patient or study tag
  edit goes to every exportable, a series tag edit to its own exportable.
* :meth:`ExportDialog.export` is onExport + exportSeries (Widgets/qSlicerDICOMExportDialog.cxx,
  5.6 lines 403-470 and 525-585): the directory is set on every exportable, the plugin's
  ``export`` receives the list; to the database the files go to a temporary folder
  ``DICOMExportTemp_<yyyyMMdd_hhmmss>`` under the application's temporary path, are added
  with ctkDICOMIndexer::addDirectory(copy = true), and the folder is removed; success shows
  "Export successful", an error message goes to the dialog's error label.
"""

from __future__ import annotations

import datetime
import os
import random
import string
from dataclasses import dataclass, field

from . import ctk, qt


@dataclass
class Row:
    """One row of the exportables list: a plugin's exportables for the selection."""

    plugin_class: str
    exportables: list
    confidence: float

    @property
    def text(self) -> str:
        first = self.exportables[0]
        return f"{first.name} ({self.confidence * 100:.0f}%, {len(self.exportables)} series) ({first.pluginClass})"


@dataclass
class ExportResult:
    ok: bool
    error: str = ""
    directory: str = ""
    files: list = field(default_factory=list)


class ExportDialog:
    def __init__(self, harness):
        self.harness = harness
        self.slicer = harness.slicer
        self.rows: list[Row] = []
        self.exportables: list = []
        self.patient_item = 0
        self.study_item = 0
        self.error = ""

    @property
    def sh(self):
        return self.slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(self.slicer.mrmlScene)

    # -- qSlicerSubjectHierarchyDICOMPlugin::openDICOMExportDialog -----------------------

    def open(self, item: int) -> bool:
        """Right-click → Export to DICOM... on ``item``; False when the user cancels."""
        sh, constants = self.sh, self.slicer.vtkMRMLSubjectHierarchyConstants
        study_level, patient_level = constants.GetDICOMLevelStudy(), constants.GetDICOMLevelPatient()
        if sh.IsItemLevel(item, study_level):
            valid = sh.IsItemLevel(sh.GetItemParent(item), patient_level)
        else:
            study = sh.GetItemParent(item)
            valid = bool(study) and sh.IsItemLevel(study, study_level) and sh.IsItemLevel(
                sh.GetItemParent(study), patient_level)
        if not valid:
            answer = qt.QMessageBox.question(
                None, "Create new patient and study for DICOM export?",
                "Data to export need to be under a study item, placed under a patient item in the subject "
                "hierarchy.\nDefault patient and study will be created and the selected data and its related "
                "datasets will be moved in it for export.\n\nClick Cancel, to create the patient/study hierarchy "
                "manually and drag-and-drop the exportable data under the study.",
                qt.QMessageBox.Ok | qt.QMessageBox.Cancel, qt.QMessageBox.Ok)
            if answer != qt.QMessageBox.Ok:
                return False
            if sh.IsItemLevel(item, study_level):
                sh.SetItemParent(item, self._default_patient())
            else:
                self._move_under_a_study(item)
        self.examine(item)
        return True

    def _move_under_a_study(self, item: int) -> None:
        sh, constants = self.sh, self.slicer.vtkMRMLSubjectHierarchyConstants
        referenced = list(sh.GetItemsReferencedFromItemByDICOM(item))
        nodes = self.slicer.mrmlScene.GetReferencedNodes(sh.GetItemDataNode(item))
        for index in range(nodes.GetNumberOfItems()):
            node_item = sh.GetItemByDataNode(nodes.GetItemAsObject(index))
            if node_item and node_item not in referenced:
                referenced.append(node_item)
        study = 0
        for other in referenced:
            ancestor = sh.GetItemAncestorAtLevel(other, constants.GetDICOMLevelStudy())
            if ancestor and not study:
                study = ancestor
        if not study:
            study = self._default_study()
            sh.SetItemParent(study, self._default_patient())
        elif not sh.GetItemAncestorAtLevel(study, constants.GetDICOMLevelPatient()):
            sh.SetItemParent(study, self._default_patient())
        sh.SetItemParent(item, study)
        for other in referenced:
            sh.SetItemParent(other, study)

    def _default_patient(self) -> int:
        sh, constants = self.sh, self.slicer.vtkMRMLSubjectHierarchyConstants
        name = "Anonymous"
        patient_id = "".join(random.choice(string.ascii_uppercase[:25]) for _ in range(6))
        patient = sh.CreateSubjectItem(sh.GetSceneItemID(), f"{name} ({patient_id})")
        sh.SetItemAttribute(patient, constants.GetDICOMPatientNameAttributeName(), name)
        sh.SetItemAttribute(patient, constants.GetDICOMPatientIDAttributeName(), patient_id)
        return patient

    def _default_study(self) -> int:
        from pydicom.uid import generate_uid

        sh, constants = self.sh, self.slicer.vtkMRMLSubjectHierarchyConstants
        description = "No study description"
        now = datetime.datetime.now()
        date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        uid = generate_uid()
        study = sh.CreateStudyItem(sh.GetSceneItemID(), f"{description} ({date})")
        sh.SetItemUID(study, constants.GetDICOMUIDName(), uid)
        sh.SetItemAttribute(study, constants.GetDICOMStudyInstanceUIDAttributeName(), uid)
        sh.SetItemAttribute(study, constants.GetDICOMStudyDescriptionAttributeName(), description)
        sh.SetItemAttribute(study, constants.GetDICOMStudyDateAttributeName(), date)
        sh.SetItemAttribute(study, constants.GetDICOMStudyTimeAttributeName(), time)
        return study

    # -- qSlicerDICOMExportDialog::examineSelectedItem -----------------------------------

    def examine(self, item: int) -> list[Row]:
        sh, constants = self.sh, self.slicer.vtkMRMLSubjectHierarchyConstants
        if sh.IsItemLevel(item, constants.GetDICOMLevelStudy()):
            children = []
            sh.GetItemChildren(item, children)  # the Python wrapping fills a list
            series_items = list(children)
        elif sh.GetItemDataNode(item):
            series_items = [item]
        else:
            raise ValueError("Can only export data node or study item")
        by_plugin: dict[str, list] = {}
        for series_item in series_items:
            exportables = []
            for plugin_class in self.slicer.modules.dicomPlugins:
                plugin = self.slicer.modules.dicomPlugins[plugin_class]()
                exportables.extend(plugin.examineForExport(series_item))
            for exportable in exportables:
                by_plugin.setdefault(exportable.pluginClass, []).append(exportable)
        rows = [Row(name, items, sum(e.confidence for e in items) / len(items)) for name, items in by_plugin.items()]
        # QMultiMap keyed by 1 - confidence: highest confidence first, ties in insertion order reversed
        self.rows = sorted(rows, key=lambda row: 1.0 - row.confidence)
        if self.rows:
            self.select(0)
        return self.rows

    def row_of(self, plugin_class: str) -> int:
        return next(i for i, row in enumerate(self.rows) if row.plugin_class == plugin_class)

    # -- onExportableSelectedAtRow + qSlicerDICOMTagEditorWidget::setExportables -----------

    def select(self, row: int) -> str:
        sh, constants = self.sh, self.slicer.vtkMRMLSubjectHierarchyConstants
        self.error = ""
        self.exportables = list(self.rows[row].exportables)
        prefix = constants.GetDICOMAttributePrefix()
        self.study_item = 0
        for exportable in self.exportables:
            parent = sh.GetItemParent(exportable.subjectHierarchyItemID)
            if not self.study_item:
                if not parent:
                    self.error = "No study found"
                    return self.error
                self.study_item = parent
            elif self.study_item != parent:
                self.error = "Exportables are not in the same study"
                return self.error
        self.patient_item = sh.GetItemParent(self.study_item)
        if not self.patient_item:
            self.error = "No patient found"
            return self.error
        for owner, names in ((self.patient_item, constants.GetDICOMPatientTagNames()),
                             (self.study_item, constants.GetDICOMStudyTagNames())):
            present = list(sh.GetItemAttributeNames(owner))
            for name in names:
                if prefix + name not in present:
                    sh.SetItemAttribute(owner, prefix + name, "")
            for attribute in sh.GetItemAttributeNames(owner):
                if attribute.startswith(prefix):
                    for exportable in self.exportables:
                        exportable.setTag(attribute[len(prefix):], sh.GetItemAttribute(owner, attribute))
        logic = self.slicer.vtkSlicerSubjectHierarchyModuleLogic
        for exportable in self.exportables:
            series_item = exportable.subjectHierarchyItemID
            for name in exportable.tag_map():
                if logic.IsPatientTag(name) or logic.IsStudyTag(name):
                    continue
                if sh.HasItemAttribute(series_item, prefix + name):
                    exportable.setTag(name, sh.GetItemAttribute(series_item, prefix + name))
        return ""

    # -- qSlicerDICOMTagEditorWidget::tagsTableCellChanged ---------------------------------

    def edit(self, name: str, value: str, exportable=None) -> None:
        """The user types ``value`` in the row of tag ``name`` (of ``exportable``'s section
        for a series tag)."""
        logic = self.slicer.vtkSlicerSubjectHierarchyModuleLogic
        if logic.IsPatientTag(name) or logic.IsStudyTag(name):
            for each in self.exportables:
                each.setTag(name, value)
        else:
            (exportable or self.exportables[0]).setTag(name, value)

    def commit_tags(self) -> None:
        """"Save modified tags" checked: qSlicerDICOMTagEditorWidget::commitChangesToItems."""
        sh, constants = self.sh, self.slicer.vtkMRMLSubjectHierarchyConstants
        prefix = constants.GetDICOMAttributePrefix()
        logic = self.slicer.vtkSlicerSubjectHierarchyModuleLogic
        for exportable in self.exportables:
            for name, value in exportable.tag_map().items():
                if logic.IsPatientTag(name):
                    sh.SetItemAttribute(self.patient_item, prefix + name, value)
                elif logic.IsStudyTag(name):
                    sh.SetItemAttribute(self.study_item, prefix + name, value)
                else:
                    sh.SetItemAttribute(exportable.subjectHierarchyItemID, prefix + name, value)

    # -- qSlicerDICOMExportDialog::onExport + exportSeries ---------------------------------

    def export(self, folder: str | None = None, save_tags: bool = False) -> ExportResult:
        """Export to ``folder``, or to the DICOM database when ``folder`` is None."""
        to_database = folder is None
        if to_database:
            stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
            folder = os.path.join(self.slicer.app.temporaryPath, f"DICOMExportTemp_{stamp}")
            os.makedirs(folder, exist_ok=True)
        if save_tags:
            self.commit_tags()
        ok, error = self._export_series(folder)
        files = sorted(os.path.join(folder, name) for name in os.listdir(folder)) if os.path.isdir(folder) else []
        if to_database:
            if ok:
                indexer = ctk.ctkDICOMIndexer()
                indexer.setDatabase(self.slicer.app.dicomDatabase())
                indexer.addDirectory(os.path.abspath(folder), True)
            for path in files:
                os.remove(path)
            os.rmdir(folder)
        if ok:
            where = "the DICOM database" if to_database else os.path.abspath(folder)
            qt.QMessageBox.information(None, "Export successful", f"DICOM dataset successfully exported to {where}")
        self.error = error
        return ExportResult(ok, error, folder, files)

    def _export_series(self, folder: str) -> tuple[bool, str]:
        if not self.exportables:
            return False, ""
        for exportable in self.exportables:
            exportable.setDirectory(os.path.abspath(folder))
        qt.QApplication.setOverrideCursor(qt.QCursor(qt.Qt.BusyCursor))
        plugin = self.slicer.modules.dicomPlugins[self.exportables[0].pluginClass]()
        try:
            message = plugin.export(self.exportables)
        except Exception:
            import logging
            import traceback

            message = "DICOM export failed. See application log for details"
            logging.error(f"Failed to export using plugin {type(plugin).__name__}")
            traceback.print_exc()
        qt.QApplication.restoreOverrideCursor()
        if message is None:
            return False, "Error occurred in exporter"
        return (message == ""), message
