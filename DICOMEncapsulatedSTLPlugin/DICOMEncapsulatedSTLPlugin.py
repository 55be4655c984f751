"""DICOM plugin pair for Encapsulated STL (Supplement 205) and Encapsulated OBJ + MTL
(Supplement 208): load and Export to DICOM.

A thin adapter between Slicer's DICOM module and ``EncapsulatedSTLLogic`` (the
EncapsulatedSTL module), which uses the ``encapsulated_stl`` package for all DICOM,
STL and geometry work.  Works in Slicer 5.6 and later: only the DICOMPlugin
interface those releases share is used.

What the DICOM browser loads is decided by confidence alone: for every series it
selects the loadables of the highest confidence and overwrites the plugins' own
``selected`` flags (DICOMUtils.selectHighestConfidenceLoadables).  So each object has
exactly one loadable at :data:`PREFERRED_CONFIDENCE` (a lone object as a model, the
objects of one Model Group together as one segmentation), every other way of loading
it is offered below Slicer's own DICOMM3DPlugin (0.95), and an object that cannot be
loaded is not offered at all: its problem goes to the application log.

An Encapsulated OBJ object is one segmentation, a segment per group, coloured by the
Encapsulated MTL objects it references (found in the database by SOP Instance UID, in
any series) or, for a producer that writes no reference, those of its series or
study.  Slicer 5.12's DICOMM3DPlugin picks files by Modality M3D alone and offers
every OBJ and MTL object at 0.95 as an STL (DICOMM3DPlugin.py: examineFiles checks
only Modality; load writes the document to "temp.STL" and reads it with
slicer.util.loadModel), which fails on OBJ and MTL text: so an OBJ object gets a
preferred loadable here as an STL object does, and a series of MTL objects alone gets
one that loads nothing (its materials are loaded with their model), so that the
browser never pre-selects the M3D reading of it.
"""

import logging
import os

import slicer
from DICOMLib import DICOMLoadable, DICOMPlugin
from slicer.i18n import translate

PLUGIN_NAME = "DICOMEncapsulatedSTLPlugin"


def _(text):
    """Translated ``text``; the context is named here, not found by inspecting the stack
    (slicer.i18n.tr), which would cost milliseconds per call in examine."""
    return translate(PLUGIN_NAME, text)

ENCAPSULATED_STL_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.104.3"
ENCAPSULATED_OBJ_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.104.4"
ENCAPSULATED_MTL_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.104.5"

#: Above the 0.95 of Slicer 5.12's DICOMM3DPlugin (no units, no references, no groups).
PREFERRED_CONFIDENCE = 0.99
#: Other ways of loading the same objects, offered under Advanced, never pre-selected.
ALTERNATIVE_CONFIDENCE = 0.5

#: Series-level tags offered in the Export to DICOM dialog, with their defaults
#: (SeriesNumber: the next number free in the study, filled in by examineForExport).
EXPORT_TAGS = {
    "SeriesDescription": "",
    "SeriesNumber": "",
    "ContentDescription": "",
    "ModelUsage": "planning",
    "ImageLaterality": "",
    "ModelMirroring": "NO",
    "ModelModification": "NO",
    "BurnedInAnnotation": "NO",
    "MeasurementUnits": "mm",
    # "separate" (an STL object per segment), "merged" (one STL object), or "obj": one
    # Encapsulated OBJ with every segment a named group, colours and opacities in an MTL
    "Segments": "separate",
    # for source images that say their identity was removed but not how: else not repeated
    "DeidentificationMethod": "",
    # "new", or for a node loaded from Encapsulated STL objects "edited" (the default then)
    # or "component": a new version naming them in Predecessor Documents Sequence (CID 7062)
    "Version": "new",
}


def _seriesDescription(node):
    """The node's name as a Series Description: cut to fit (LO, 64) with "..." if longer."""
    from encapsulated_stl.iod.values import fitted

    return fitted(node.GetName(), "SeriesDescription")


#: The values of the "Segments" tag: (merge segments, file format).
SEGMENTS_CHOICES = {"separate": (False, "stl"), "merged": (True, "stl"), "obj": (False, "obj")}


def _segments(exportable):
    value = (exportable.tag("Segments") or "").strip().lower() or "separate"
    if value not in SEGMENTS_CHOICES:
        raise ValueError(_("Segments must be separate, merged or obj, not '{value}'").format(value=value))
    return SEGMENTS_CHOICES[value]


def _yesNo(value, tag):
    text = (value or "").strip().upper()
    if text in ("", "YES", "NO"):
        return None if not text else text == "YES"
    raise ValueError(_("{tag} must be YES or NO, not '{value}'").format(tag=tag, value=value))


class DICOMEncapsulatedSTLPluginClass(DICOMPlugin):
    """Encapsulated STL objects <-> model and segmentation nodes."""

    def __init__(self):
        super().__init__()
        self.loadType = _("Encapsulated STL")
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
        """Loadables for every Encapsulated STL object; never raises.

        Source images are offered for loading once: only a preferred loadable names
        them, and a set of source instances already named in this examination is not
        named again.
        """
        loadables = []
        for files in fileLists:
            cached = self.getCachedLoadables(files)
            if cached is None:
                try:
                    cached = self._examineFiles(files)
                except Exception as error:  # a broken series must not break the DICOM browser
                    logging.error(f"Encapsulated STL plugin could not examine a series: {error}")
                    cached = []
                self.cacheLoadables(files, cached)
            loadables += cached
        named = set()
        for loadable in loadables:
            sources = tuple(loadable.sourceInstanceUIDs)
            offer = loadable.confidence == PREFERRED_CONFIDENCE and sources and sources not in named
            loadable.referencedInstanceUIDs = list(sources) if offer else []
            if offer:
                named.add(sources)
        return loadables

    def _examineFiles(self, files):
        from EncapsulatedSTL import EncapsulatedSTLLogic

        database = slicer.dicomDatabase
        classes = {f: database.fileValue(f, self.tags["sopClassUID"]) for f in files}
        stlFiles = [f for f in files if classes[f] == ENCAPSULATED_STL_SOP_CLASS_UID]
        objFiles = [f for f in files if classes[f] == ENCAPSULATED_OBJ_SOP_CLASS_UID]
        mtlFiles = [f for f in files if classes[f] == ENCAPSULATED_MTL_SOP_CLASS_UID]
        loadables = [loadable for path in objFiles for loadable in self._objLoadables(path)]
        if mtlFiles and not loadables:
            loadables.append(self._materialsLoadable(mtlFiles))
        readable, groups = [], {}
        for path in stlFiles:
            try:
                model = EncapsulatedSTLLogic.examineModel(path)
            except Exception as error:  # any producer's damaged object: say why, never offer it
                logging.error(_("Encapsulated STL object {path} cannot be loaded: {problem}").format(
                    path=path, problem=error))
                continue
            readable.append((path, model))
            if model.model_group_uid:
                groups.setdefault(model.model_group_uid, []).append((path, model))
        groups = {uid: members for uid, members in groups.items() if len(members) > 1}
        grouped = {path for members in groups.values() for path, _model in members}
        for path, model in readable:
            alone = path not in grouped
            loadables.append(self._loadable([path], [model], model.name, asSegmentation=False,
                                            confidence=PREFERRED_CONFIDENCE if alone else ALTERNATIVE_CONFIDENCE))
            if alone:
                loadables.append(self._loadable([path], [model], model.name + _(" (segmentation)"),
                                                asSegmentation=True, confidence=ALTERNATIVE_CONFIDENCE))
        for members in groups.values():
            paths, models = [p for p, _model in members], [m for _path, m in members]
            name = models[0].series_description or _("{count} models").format(count=len(models))
            group = self._loadable(paths, models, name, asSegmentation=True, confidence=PREFERRED_CONFIDENCE)
            group.tooltip = _("{count} models of one model group, loaded as the segments of one segmentation").format(
                count=len(paths)) + "\n" + "\n".join(self._describe(m) for m in models)
            loadables.append(group)
        return loadables

    def _objLoadables(self, path):
        """An Encapsulated OBJ object as one segmentation (preferred) or as a model per
        group, with the Encapsulated MTL files that colour it; [] when it cannot be read."""
        from EncapsulatedSTL import EncapsulatedSTLLogic

        logic = self._logic()
        try:
            model = EncapsulatedSTLLogic.examineModel(path)
            materials = logic.materialsFor(model)
        except Exception as error:  # any producer's damaged object: say why, never offer it
            logging.error(_("Encapsulated OBJ object {path} cannot be loaded: {problem}").format(
                path=path, problem=error))
            return []
        name = model.series_description or model.name
        missing = logic.missingMaterials(model, materials)
        loadables = []
        for asSegmentation, confidence, title in ((True, PREFERRED_CONFIDENCE, name),
                                                  (False, ALTERNATIVE_CONFIDENCE, name + _(" (models)"))):
            loadable = self._loadable([path], [model], title, asSegmentation, confidence)
            loadable.materialFiles = [str(library.path) for library in materials.libraries if library.path]
            loadable.warning = "; ".join(w for w in (missing, loadable.warning) if w)
            loadable.tooltip += "\n" + "\n".join(
                [_("{count} group(s): {names}").format(count=len(model.groups), names=", ".join(
                    g.name for g in model.groups))]
                + [_("materials from {path}").format(path=p) for p in loadable.materialFiles] + materials.notes)
            loadables.append(loadable)
        return loadables

    def _materialsLoadable(self, files):
        """Encapsulated MTL objects without their model in the series: they colour an OBJ
        model and are read when it is loaded, so loading them alone adds nothing (and
        says so) rather than leaving Slicer's M3D plugin to read them as STL and fail."""
        loadable = DICOMLoadable()
        loadable.files = list(files)
        description = slicer.dicomDatabase.fileValue(files[0], self.tags["seriesDescription"])
        loadable.name = _("{name} (materials)").format(name=description or _("Encapsulated MTL"))
        loadable.tooltip = _("{count} Encapsulated MTL object(s): colours and opacities of an Encapsulated OBJ "
                             "model, loaded with the model. Load the model's series to see them.").format(count=len(files))
        loadable.confidence = PREFERRED_CONFIDENCE
        loadable.selected = True
        loadable.materialsOnly = True
        loadable.sourceInstanceUIDs = []
        loadable.referencedInstanceUIDs = []
        return loadable

    def _loadable(self, files, models, name, asSegmentation, confidence):
        loadable = DICOMLoadable()
        loadable.files = list(files)
        loadable.name = name
        loadable.confidence = confidence
        loadable.asSegmentation = asSegmentation
        loadable.sourceInstanceUIDs = list(dict.fromkeys(uid for m in models for uid in m.source_instance_uids))
        loadable.referencedInstanceUIDs = []
        loadable.tooltip = "\n".join(self._describe(m) for m in models)
        unknown = sorted({m.units_problem for m in models if m.units is None})
        notes = list(dict.fromkeys(note for m in models for note in m.notes))
        # A warning makes the DICOM browser ask "load anyway?" before loading: millimetres
        # are assumed for undeclared units only when the user says yes, having seen why.
        warnings = ["; ".join(unknown) + _(": loaded as millimetres")] if unknown else []
        loadable.warning = "; ".join(warnings + notes)
        loadable.selected = confidence == PREFERRED_CONFIDENCE
        return loadable

    @staticmethod
    def _describe(model):
        units = model.units or _("undeclared units")
        text = _("Encapsulated {format}: {triangles} triangles in {units}, {sources} source instances, made by {producer}").format(
            format=model.file_format, triangles=model.mesh.triangle_count, units=units,
            sources=len(model.source_instance_uids), producer=model.producer)
        # attributes the object holds but the model could not use (a damaged colour...)
        return "\n".join([text] + model.problems)

    def load(self, loadable):
        """The objects as model node(s) or one segmentation, named as the loadable is now
        named (the user may have edited it), under their patient and study."""
        if getattr(loadable, "materialsOnly", False):
            logging.info(_("{name}: materials are loaded with the Encapsulated OBJ model that uses them; "
                           "nothing to load alone").format(name=loadable.name))
            return True
        logic = self._logic()
        try:
            nodes = logic.loadFiles(loadable.files, asSegmentation=getattr(loadable, "asSegmentation", False),
                                    name=loadable.name, materialFiles=getattr(loadable, "materialFiles", None))
        except Exception as error:  # a file damaged or replaced since it was examined: say why, no traceback
            message = _("Could not load the Encapsulated STL object {name}: {problem}").format(
                name=loadable.name, problem=error)
            logging.error(message)
            slicer.util.errorDisplay(message, windowTitle=_("Encapsulated STL"))
            return False
        # the item must name the model's source images even when the browser offered them elsewhere
        loadable.referencedInstanceUIDs = list(getattr(loadable, "sourceInstanceUIDs", []))
        for node in nodes:
            self.addSeriesInSubjectHierarchy(loadable, node)
        return True

    # -- export ----------------------------------------------------------------

    def examineForExport(self, subjectHierarchyItemID):
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        node = shNode.GetItemDataNode(subjectHierarchyItemID)
        if node is None or not (node.IsA("vtkMRMLSegmentationNode") or node.IsA("vtkMRMLModelNode")):
            return []
        exportable = slicer.qSlicerDICOMExportable()
        exportable.name = _("Encapsulated STL (3D printing model)")
        exportable.subjectHierarchyItemID = subjectHierarchyItemID
        exportable.pluginClass = PLUGIN_NAME
        # DICOM SEG is the usual export of a segmentation; a model has no other DICOM form
        exportable.confidence = 0.4 if node.IsA("vtkMRMLSegmentationNode") else 0.8
        logic = self._logic()
        try:
            source, _volume, explanation = logic.sourceSeriesFor(node)
        except Exception as error:
            source, explanation = None, str(error)
        if source is None:
            exportable.tooltip = _("Creates Encapsulated STL objects. No source series found ({explanation}): "
                                   "the objects get a new Frame of Reference.").format(explanation=explanation)
        else:
            exportable.tooltip = _("Creates Encapsulated STL objects in the frame of the {explanation}.").format(
                explanation=explanation)
        for tag, default in EXPORT_TAGS.items():
            exportable.setTag(tag, default)
        origins = logic.loadedFrom(node)
        if origins and all(origins) and "OBJ" not in logic.loadedFormats(node):
            exportable.setTag("Version", "edited")
            exportable.tooltip += " " + _(
                "It was loaded from Encapsulated STL: by default it is stored as a new version of that object "
                "(Version: edited, or component); 'new' stores a new model instead.")
        exportable.setTag("SeriesDescription", _seriesDescription(node))
        studyUID = source.study_instance_uid if source is not None else logic.studyInstanceUIDOfItem(subjectHierarchyItemID)
        exportable.setTag("SeriesNumber", str(logic.nextSeriesNumber(studyUID)))
        return [exportable]

    def export(self, exportables):
        """Write every exportable's objects into its directory; "" or one error message.

        Decisions the user should know (the source series' patient and study kept over
        different ones in the dialog, a series number already used in the study) are
        shown once, after writing.  Surfaces that would not print are named before
        anything is written, and the user chooses to export them all the same or not.
        """
        from EncapsulatedSTL import ensureHighdicom

        if not ensureHighdicom():
            return _("Encapsulated STL export needs the Python package highdicom, which was not installed.")
        from encapsulated_stl.errors import EncapsulatedSTLError
        from encapsulated_stl.inputs.surfaces import UnprintableSurface

        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        logic = self._logic()
        planned, written, notices = [], [], []
        try:
            for exportable in exportables:
                node = shNode.GetItemDataNode(exportable.subjectHierarchyItemID)
                if node is None:
                    return _("Item '{name}' has no data to export").format(
                        name=shNode.GetItemName(exportable.subjectHierarchyItemID))
                mergeSegments, fileFormat = _segments(exportable)
                datasets = logic.createDatasets(
                    node, mergeSegments=mergeSegments, fileFormat=fileFormat,
                    newStudy=self._studyFromDialog(exportable), newVersion=self._version(exportable),
                    **self._metadata(exportable, node))
                notices += logic.notices
                planned.append((datasets, exportable.directory))
            unprintable = [notice for notice in notices if isinstance(notice, UnprintableSurface)]
            if unprintable and not slicer.util.confirmOkCancelDisplay(
                    _("These surfaces would not print as they are:\n\n{surfaces}\n\nExport them all the same?").format(
                        surfaces="\n\n".join(unprintable)), windowTitle=_("Encapsulated STL export")):
                return _("Nothing was exported (surfaces that would not print: {names}).").format(
                    names=", ".join(f"'{notice.name}'" for notice in unprintable))
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
        notices = [notice for notice in notices if not isinstance(notice, UnprintableSurface)]  # asked above
        if notices:
            slicer.util.warningDisplay("\n\n".join(dict.fromkeys(notices)), windowTitle=_("Encapsulated STL export"))
        return ""

    @staticmethod
    def _metadata(exportable, node):
        def tag(name):
            value = exportable.tag(name)
            return value.strip() if value else ""

        number = tag("SeriesNumber")
        if number and not number.isdigit():
            raise ValueError(_("Series Number must be a whole number, not '{number}'").format(number=number))
        return dict(
            series_description=tag("SeriesDescription") or _seriesDescription(node),
            series_number=int(number) if number else None,
            content_description=tag("ContentDescription") or None,
            usage=tag("ModelUsage") or None,
            laterality=tag("ImageLaterality") or None,
            model_mirroring=_yesNo(tag("ModelMirroring"), "Model Mirroring"),
            model_modification=_yesNo(tag("ModelModification"), "Model Modification"),
            burned_in_annotation=bool(_yesNo(tag("BurnedInAnnotation"), "Burned In Annotation")),
            units=tag("MeasurementUnits") or "mm",
            deidentification_method=tag("DeidentificationMethod") or None,
        )

    @staticmethod
    def _version(exportable):
        """None for a new model, else the CID 7062 purpose of a new version."""
        from encapsulated_stl.iod.codes import PREDECESSOR_PURPOSES

        value = (exportable.tag("Version") or "").strip().lower()
        if value in ("", "new"):
            return None
        if value not in PREDECESSOR_PURPOSES:
            raise ValueError(_("Version must be new, edited or component, not '{value}'").format(value=value))
        return value

    @staticmethod
    def _studyFromDialog(exportable):
        """Patient and study as the dialog's tag editor gives them."""
        from encapsulated_stl.iod.encapsulate import NewStudy

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
        parent.title = _("DICOM Encapsulated STL Plugin")
        parent.categories = ["Developer Tools.DICOM Plugins"]
        parent.contributors = ["encapsulated-stl project"]
        parent.helpText = _("Loads and exports DICOM Encapsulated STL (3D printing models).")
        parent.acknowledgementText = _("DICOM Supplement 205.")
        parent.dependencies = ["DICOM", "EncapsulatedSTL"]
        parent.hidden = True
        try:
            slicer.modules.dicomPlugins
        except AttributeError:
            slicer.modules.dicomPlugins = {}
        slicer.modules.dicomPlugins[PLUGIN_NAME] = DICOMEncapsulatedSTLPluginClass
