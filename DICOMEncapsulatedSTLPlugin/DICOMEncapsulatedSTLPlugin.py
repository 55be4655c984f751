"""DICOM plugin pair for Encapsulated STL (Supplement 205): load and Export to DICOM.

A thin adapter between Slicer's DICOM module and ``EncapsulatedSTLLogic`` (the
EncapsulatedSTL module), which uses the ``encapsulated_stl`` package for all DICOM,
STL and geometry work.  Works in Slicer 5.6 and later: only the DICOMPlugin
interface those releases share is used.
"""

import logging
import os

import slicer
from DICOMLib import DICOMLoadable, DICOMPlugin

PLUGIN_NAME = "DICOMEncapsulatedSTLPlugin"
ENCAPSULATED_STL_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.104.3"

#: Slicer 5.12+ ships DICOMM3DPlugin at 0.95 (no units, no references): ours wins.
MODEL_CONFIDENCE = 0.99
ALTERNATIVE_CONFIDENCE = 0.6

#: Series-level tags offered in the Export to DICOM dialog, with their defaults.
EXPORT_TAGS = {
    "SeriesDescription": "",
    "SeriesNumber": "3000",
    "ContentDescription": "",
    "ModelUsage": "planning",
    "ImageLaterality": "",
    "ModelMirroring": "NO",
    "ModelModification": "NO",
    "BurnedInAnnotation": "NO",
    "MeasurementUnits": "mm",
    "Segments": "separate",
}


def _yesNo(value, tag):
    text = (value or "").strip().upper()
    if text in ("", "YES", "NO"):
        return None if not text else text == "YES"
    raise ValueError(f"{tag} must be YES or NO, not '{value}'")


class DICOMEncapsulatedSTLPluginClass(DICOMPlugin):
    """Encapsulated STL objects <-> model and segmentation nodes."""

    def __init__(self):
        super().__init__()
        self.loadType = "Encapsulated STL"
        self.tags["sopClassUID"] = "0008,0016"
        self.tags["seriesInstanceUID"] = "0020,000E"
        self.tags["seriesDescription"] = "0008,103E"
        self.tags["seriesNumber"] = "0020,0011"

    @staticmethod
    def _logic():
        from EncapsulatedSTL import EncapsulatedSTLLogic

        return EncapsulatedSTLLogic()

    # -- import ----------------------------------------------------------------

    def examineForImport(self, fileLists):
        """Loadables for every Encapsulated STL file; never raises."""
        loadables = []
        for files in fileLists:
            try:
                cached = self.getCachedLoadables(files)
                if cached is None:
                    cached = self._examineFiles(files)
                    self.cacheLoadables(files, cached)
                loadables += cached
            except Exception as error:  # a broken file must not break the DICOM browser
                logging.error(f"Encapsulated STL plugin could not examine a series: {error}")
        return loadables

    def _examineFiles(self, files):
        database = slicer.dicomDatabase
        stlFiles = [f for f in files if database.fileValue(f, self.tags["sopClassUID"]) == ENCAPSULATED_STL_SOP_CLASS_UID]
        if not stlFiles:
            return []
        try:
            from encapsulated_stl.model import read_encapsulated_model
        except ImportError:  # highdicom not installed yet: offer the files, check them on load
            read_encapsulated_model = None
        seriesName = self.defaultSeriesNodeName(database.fileValue(stlFiles[0], self.tags["seriesInstanceUID"]))
        loadables, groups = [], {}
        for path in stlFiles:
            model, problem = None, ""
            if read_encapsulated_model is not None:
                try:
                    model = read_encapsulated_model(path)
                except Exception as error:  # any producer's broken file: say so, never raise
                    problem = str(error)
            loadable = self._loadable([path], model.name if model else seriesName, asSegmentation=False)
            if problem:
                loadable.warning = f"This Encapsulated STL object cannot be loaded: {problem}"
                loadable.selected = False
                loadable.tooltip = problem
            elif model is not None:
                loadable.referencedInstanceUIDs = model.source_instance_uids
                loadable.tooltip = self._describe(model)
                if model.units is None:
                    loadable.warning = f"{model.units_problem}; it will be loaded as millimetres."
                if model.model_group_uid:
                    groups.setdefault(model.model_group_uid, []).append((path, model))
            else:
                loadable.tooltip = "highdicom will be installed (after asking) when this is loaded"
            loadables.append(loadable)
            alternative = self._loadable([path], loadable.name, asSegmentation=True)
            alternative.referencedInstanceUIDs = loadable.referencedInstanceUIDs
            alternative.warning = loadable.warning
            loadables.append(alternative)
        for members in groups.values():
            if len(members) < 2:
                continue
            paths = [path for path, _ in members]
            group = self._loadable(paths, seriesName, asSegmentation=True)
            group.confidence = MODEL_CONFIDENCE
            group.selected = True
            group.tooltip = f"{len(paths)} models of one model group, loaded as segments of one segmentation"
            group.referencedInstanceUIDs = sorted({uid for _, m in members for uid in m.source_instance_uids})
            for loadable in loadables:
                if loadable.files[0] in paths and not loadable.asSegmentation:
                    loadable.selected = False
            loadables.append(group)
        return loadables

    def _loadable(self, files, name, asSegmentation):
        loadable = DICOMLoadable()
        loadable.files = list(files)
        loadable.name = name + (" (segmentation)" if asSegmentation else "")
        loadable.confidence = ALTERNATIVE_CONFIDENCE if asSegmentation else MODEL_CONFIDENCE
        loadable.selected = not asSegmentation
        loadable.referencedInstanceUIDs = []
        loadable.asSegmentation = asSegmentation
        return loadable

    @staticmethod
    def _describe(model):
        units = model.units or "undeclared units"
        return (f"Encapsulated STL: {model.mesh.triangle_count} triangles in {units}, "
                f"{len(model.source_instance_uids)} source instances, made by {model.producer}")

    def load(self, loadable):
        """Model node(s) or a segmentation node in RAS mm, in the subject hierarchy."""
        from EncapsulatedSTL import ensureHighdicom

        if not ensureHighdicom():
            loadable.warning = "highdicom is needed to load Encapsulated STL objects"
            logging.error(loadable.warning)
            return False
        logic = self._logic()
        try:
            models = logic.readModels(loadable.files)
            asSegmentation = getattr(loadable, "asSegmentation", False)
            name = loadable.name if asSegmentation else None
            nodes = logic.loadModels(models, asSegmentation=asSegmentation, name=name)
        except Exception as error:
            loadable.warning = f"Could not load the Encapsulated STL object: {error}"
            logging.error(loadable.warning)
            return False
        for node in nodes:
            self.addSeriesInSubjectHierarchy(loadable, node)
        return nodes[0]

    # -- export ----------------------------------------------------------------

    def examineForExport(self, subjectHierarchyItemID):
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        node = shNode.GetItemDataNode(subjectHierarchyItemID)
        if node is None or not (node.IsA("vtkMRMLSegmentationNode") or node.IsA("vtkMRMLModelNode")):
            return []
        exportable = slicer.qSlicerDICOMExportable()
        exportable.name = "Encapsulated STL (3D printing model)"
        exportable.subjectHierarchyItemID = subjectHierarchyItemID
        exportable.pluginClass = PLUGIN_NAME
        # DICOM SEG is the usual export of a segmentation; a model has no other DICOM form
        exportable.confidence = 0.4 if node.IsA("vtkMRMLSegmentationNode") else 0.8
        try:
            source, _, explanation = self._logic().sourceSeriesFor(node)
        except Exception as error:
            source, explanation = None, str(error)
        if source is None:
            exportable.tooltip = (f"Creates Encapsulated STL objects. No source series found ({explanation}): "
                                  "the objects get a new Frame of Reference.")
        else:
            exportable.tooltip = f"Creates Encapsulated STL objects in the frame of the {explanation}."
        for tag, default in EXPORT_TAGS.items():
            exportable.setTag(tag, default)
        exportable.setTag("SeriesDescription", node.GetName())
        return [exportable]

    def export(self, exportables):
        """Write every exportable's objects into its directory; "" or one error message."""
        from EncapsulatedSTL import ensureHighdicom

        if not ensureHighdicom():
            return "Encapsulated STL export needs the Python package highdicom, which was not installed."
        from encapsulated_stl.encapsulate import NewStudy
        from encapsulated_stl.errors import EncapsulatedSTLError

        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        logic = self._logic()
        planned, written = [], []
        try:
            for exportable in exportables:
                node = shNode.GetItemDataNode(exportable.subjectHierarchyItemID)
                if node is None:
                    return f"Item '{shNode.GetItemName(exportable.subjectHierarchyItemID)}' has no data to export"
                datasets = logic.createDatasets(
                    node, mergeSegments=(exportable.tag("Segments") or "").strip().lower() == "merged",
                    newStudy=self._newStudy(exportable, NewStudy), **self._metadata(exportable, node))
                planned.append((datasets, exportable.directory))
            for datasets, directory in planned:
                written += logic.writeDatasets(datasets, directory)
        except (EncapsulatedSTLError, ValueError) as error:
            for path in written:
                try:
                    os.remove(path)
                except OSError:
                    pass
            logging.error(f"Encapsulated STL export failed: {error}")
            return str(error)
        for message in logic.messages:
            logging.info(message)
        return ""

    @staticmethod
    def _metadata(exportable, node):
        def tag(name):
            value = exportable.tag(name)
            return value.strip() if value else ""

        number = tag("SeriesNumber")
        if number and not number.isdigit():
            raise ValueError(f"Series Number must be a whole number, not '{number}'")
        return dict(
            series_description=tag("SeriesDescription") or node.GetName(),
            series_number=int(number) if number else None,
            content_description=tag("ContentDescription") or None,
            usage=tag("ModelUsage") or None,
            laterality=tag("ImageLaterality") or None,
            model_mirroring=_yesNo(tag("ModelMirroring"), "Model Mirroring"),
            model_modification=_yesNo(tag("ModelModification"), "Model Modification"),
            burned_in_annotation=bool(_yesNo(tag("BurnedInAnnotation"), "Burned In Annotation")),
            units=tag("MeasurementUnits") or "mm",
        )

    @staticmethod
    def _newStudy(exportable, NewStudy):
        """Patient and study from the dialog's tags, for objects without a source series."""
        constants = slicer.vtkMRMLSubjectHierarchyConstants

        def tag(name):
            value = exportable.tag(name)
            return value.strip() if value and value.strip() else None

        return NewStudy(
            patient_name=tag(constants.GetDICOMPatientNameTagName()),
            patient_id=tag(constants.GetDICOMPatientIDTagName()),
            patient_birth_date=tag(constants.GetDICOMPatientBirthDateTagName()),
            patient_sex=tag(constants.GetDICOMPatientSexTagName()),
            study_description=tag(constants.GetDICOMStudyDescriptionTagName()),
            study_id=tag(constants.GetDICOMStudyIDTagName()),
            study_instance_uid=tag(constants.GetDICOMStudyInstanceUIDTagName()),
        )


class DICOMEncapsulatedSTLPlugin:
    """Registers the plugin with the DICOM module (hidden scripted module)."""

    def __init__(self, parent):
        parent.title = "DICOM Encapsulated STL Plugin"
        parent.categories = ["Developer Tools.DICOM Plugins"]
        parent.contributors = ["encapsulated-stl project"]
        parent.helpText = "Loads and exports DICOM Encapsulated STL (3D printing models)."
        parent.acknowledgementText = "DICOM Supplement 205."
        parent.hidden = True
        try:
            slicer.modules.dicomPlugins
        except AttributeError:
            slicer.modules.dicomPlugins = {}
        slicer.modules.dicomPlugins[PLUGIN_NAME] = DICOMEncapsulatedSTLPluginClass
