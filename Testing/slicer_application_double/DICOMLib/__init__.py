"""Test double of Slicer's DICOMLib (Modules/Scripted/DICOMLib): the plugin base classes.

Only what a DICOM plugin touches, with the attributes and behaviour of Slicer
5.6+'s ``DICOMLib/DICOMPlugin.py``: ``DICOMLoadable`` (files, name, tooltip, warning,
selected, confidence, referencedInstanceUIDs) and ``DICOMPlugin`` (loadType, tags,
the loadable cache, examine/load/export stubs, ``defaultSeriesNodeName`` and
``addSeriesInSubjectHierarchy``, which reads its tags through
``slicer.dicomDatabase.fileValue`` and builds the patient / study / series items
with the real subject hierarchy).
"""

import hashlib
import logging

import slicer


class DICOMLoadable:
    def __init__(self, qLoadable=None):
        self.files = []
        self.name = "Unknown"
        self.tooltip = "No further information available"
        self.warning = ""
        self.selected = False
        self.confidence = 0.5
        self.referencedInstanceUIDs = []


class DICOMPlugin:
    def __init__(self):
        self.loadType = "Generic DICOM"
        self.loadableCache = {}
        self.tags = {"seriesDescription": "0008,103E", "seriesNumber": "0020,0011"}

    def hashFiles(self, files):
        digest = hashlib.md5()
        for f in files:
            digest.update(f.encode("UTF-8", "ignore"))
        return digest.digest()

    def getCachedLoadables(self, files):
        return self.loadableCache.get(self.hashFiles(files))

    def cacheLoadables(self, files, loadables):
        self.loadableCache[self.hashFiles(files)] = loadables

    def examineForImport(self, fileList):
        return []

    def examine(self, fileList):
        return self.examineForImport(fileList)

    def load(self, loadable):
        return True

    def examineForExport(self, subjectHierarchyItemID):
        return []

    def export(self, exportables):
        return ""

    def defaultSeriesNodeName(self, seriesUID):
        files = slicer.dicomDatabase.filesForSeries(seriesUID)
        if not files:
            return "Unnamed Series"
        description = slicer.dicomDatabase.fileValue(files[0], self.tags["seriesDescription"])
        number = slicer.dicomDatabase.fileValue(files[0], self.tags["seriesNumber"])
        name = description or "Unnamed Series"
        if number:
            name = number + ": " + name
        return name

    def addSeriesInSubjectHierarchy(self, loadable, dataNode):
        constants = slicer.vtkMRMLSubjectHierarchyConstants
        if dataNode is None or not dataNode.IsA("vtkMRMLNode"):
            logging.error("Unable to create subject hierarchy items: invalid data node provided")
            return
        first = loadable.files[0]
        value = slicer.dicomDatabase.fileValue
        shn = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        seriesItemID = shn.CreateItem(shn.GetSceneItemID(), dataNode)
        seriesUID = value(first, "0020,000E")
        shn.SetItemUID(seriesItemID, constants.GetDICOMUIDName(), seriesUID)
        shn.SetItemAttribute(seriesItemID, constants.GetDICOMSeriesModalityAttributeName(), value(first, "0008,0060"))
        shn.SetItemAttribute(seriesItemID, constants.GetDICOMSeriesNumberAttributeName(), value(first, "0020,0011"))
        instanceUIDs = " ".join(value(f, "0008,0018") or "Unknown" for f in loadable.files)
        shn.SetItemUID(seriesItemID, constants.GetDICOMInstanceUIDName(), instanceUIDs)
        referenced = " ".join(getattr(loadable, "referencedInstanceUIDs", []) or [])
        shn.SetItemAttribute(seriesItemID, constants.GetDICOMReferencedInstanceUIDsAttributeName(), referenced)
        studyUID = value(first, "0020,000D")
        patientID = value(first, "0010,0020") or "Patient-" + studyUID
        slicer.vtkSlicerSubjectHierarchyModuleLogic.InsertDicomSeriesInHierarchy(shn, patientID, studyUID, seriesUID)
        return seriesItemID
