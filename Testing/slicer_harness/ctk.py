"""The ``ctk`` module of Slicer's Python, for tests: the DICOM database, its indexer and
the message box, following CTK's C++ at the commit Slicer 5.12 and main pin (5056664a;
the 5.6-5.10 pins differ only where said): Libs/DICOM/Core/ctkDICOMDatabase.cpp,
ctkDICOMItem.cpp, ctkDICOMIndexer.cpp, Libs/Widgets/ctkMessageBox.cpp; line numbers per
method.

The database keeps its tables in memory instead of SQLite; what a caller sees (file
paths by UID, tag values as strings) is what ctkDICOMDatabase returns.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import struct
from pathlib import Path

import pydicom
from pydicom.charset import decode_bytes
from pydicom.dataelem import RawDataElement

from . import qt

#: DCMTK's getOFString(normalize=true) per VR (dcvr*.h): leading and trailing spaces go for
#: these, only trailing ones for DA/TM, trailing NULs for UI; text VRs decoded with the
#: Specific Character Set (ctkDICOMItem::Decode), others as Latin-1.
STRIP_BOTH = {"AE", "AS", "CS", "DS", "IS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}
STRIP_TRAILING = {"DA", "DT", "TM"}
DECODED_WITH_CHARACTER_SET = {"LO", "LT", "PN", "SH", "ST", "UT", "UC"}
#: Headers are read up to the first large value: a model's STL is not needed for tags.
DEFER_BYTES = 4096


def _tag(text: str) -> int:
    group, element = (int(part, 16) for part in text.split(","))
    return (group << 16) | element


#: struct formats of the binary number VRs.
BINARY_NUMBERS = {"FL": "f", "FD": "d", "SL": "l", "SS": "h", "UL": "L", "US": "H", "SV": "q", "UV": "Q"}


def _normalized(vr: str, value: str) -> str:
    if vr in STRIP_BOTH:
        return value.strip(" ")
    if vr in STRIP_TRAILING:
        return value.rstrip(" ")
    return value.rstrip("\0 ")


#: What insert() reads of a file to index it.
INDEXED_KEYWORDS = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID")


class ctkDICOMDatabase(qt.QObject):
    """An open database: Patients / Studies / Series / Images and the tag cache
    (Libs/DICOM/Core/ctkDICOMDatabase.cpp at the CTK each release pins).

    ``insert`` indexes one file (files DCMTK cannot read are skipped with a warning);
    ``fileValue`` answers any tag of an indexed file, and of a file outside the database
    as CTK does per release: read from the file (5.6, 5.10 and later), "" (5.8, whose CTK
    returns "" for a file with no database row, fixed by CTK commit 7f8e1a67).
    """

    def __init__(self, directory=None, release: str = "main"):
        super().__init__()
        self.databaseDirectory = str(directory or "")
        self.isOpen = True
        self.tagsToPrecache = ()
        self._release = release
        self._images: dict[str, dict] = {}   # path -> {sop, series, study, patient row}
        self._patients: dict[str, str] = {}  # PatientID -> Patients.UID (row id as text)
        self._headers: dict[str, pydicom.Dataset] = {}

    # -- indexing ------------------------------------------------------------------------

    def _header(self, path: str):
        path = str(path)
        if path not in self._headers:
            try:
                header = pydicom.dcmread(path, defer_size=DEFER_BYTES, stop_before_pixels=True)
                # DCMTK parses every value as it loads a file, pydicom only when asked:
                # ask for what the index needs now, so a value DCMTK could not parse fails here
                for keyword in INDEXED_KEYWORDS:
                    header.get(keyword)
            except Exception:  # DCMTK fails to parse it; CTK logs the file and skips it
                return None
            self._headers[path] = header
        return self._headers[path]

    def insert(self, path, storeFile=True, generateThumbnail=False, createHierarchy=True, destinationDirectoryName=""):
        """Index one file (insert, L2940-3079): uidsForDataSet (L967-990) requires a Study
        Instance UID and a Patient ID (an empty one becomes the Study Instance UID)."""
        path = str(path)
        header = self._header(path)
        if header is None or "SOPInstanceUID" not in header or not header.get("StudyInstanceUID"):
            logging.warning(f"Could not read DICOM file: {path}")
            return False
        study = str(header.StudyInstanceUID)
        patient_id = str(header.get("PatientID", "") or "") or study
        row = self._patients.setdefault(patient_id, str(len(self._patients) + 1))
        self._images[path] = {"sop": str(header.SOPInstanceUID), "series": str(header.get("SeriesInstanceUID", "")),
                              "study": study, "patient": row}
        self.emit("instanceAdded(QString)", str(header.SOPInstanceUID))
        return True

    # -- queries -------------------------------------------------------------------------

    def fileValue(self, fileName, tag):
        """fileValue (L2654-2703) through ctkDICOMItem::GetAllElementValuesAsString
        (ctkDICOMItem.cpp L476-497) of ``tag`` ("gggg,eeee"): each value as DCMTK normalizes
        it, several joined by backslashes; "" for an absent tag, an empty value or a
        sequence (PythonQt turns the null QString into "")."""
        if not fileName or (self._release == "5.8" and str(fileName) not in self._images):
            return ""
        header = self._header(fileName)
        if header is None:
            return ""
        try:
            element = header.get_item(_tag(tag))
        except (KeyError, ValueError, TypeError):
            return ""
        if element is None or element.VR == "SQ":
            return ""
        if isinstance(element, RawDataElement):
            if element.value is None:
                return ""
            if element.VR in STRIP_BOTH | STRIP_TRAILING | {"UI"}:
                if element.VR in DECODED_WITH_CHARACTER_SET:
                    encodings = header.get("SpecificCharacterSet", "ISO_IR 6")
                    text = decode_bytes(element.value, encodings if isinstance(encodings, list) else [encodings], set())
                else:
                    text = element.value.decode("latin-1")
                return "\\".join(_normalized(element.VR, part) for part in text.split("\\"))
            if element.VR in BINARY_NUMBERS and len(element.value) % struct.calcsize(BINARY_NUMBERS[element.VR]):
                # DCMTK counts the whole values in the length (VM = length / size) and gives
                # those, where pydicom refuses the element
                size = struct.calcsize(BINARY_NUMBERS[element.VR])
                order = "<" if element.is_little_endian else ">"
                whole = element.value[:len(element.value) // size * size]
                return "\\".join(str(v) for v in struct.unpack(f"{order}{len(whole) // size}{BINARY_NUMBERS[element.VR]}", whole))
            element = header[_tag(tag)]
        value = element.value
        if value is None or element.VR == "SQ":
            return ""
        if isinstance(value, bytes):  # OB/OW: DCMTK gives the first byte in hex
            return f"{value[0]:02x}" if value else ""
        values = value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
        return "\\".join(_normalized(element.VR, str(v)) for v in values)

    def fileValueExists(self, fileName, tag):
        """True when ``tag`` is present in the file, even with an empty value."""
        header = self._header(fileName)
        if header is None:
            return False
        if _tag(tag) == 0x7FE00010:  # headers are read without the pixels: look for them
            return "PixelData" in pydicom.dcmread(str(fileName), defer_size=16)
        return _tag(tag) in header

    def instanceValue(self, sopInstanceUID, tag):
        path = self.fileForInstance(sopInstanceUID)
        return self.fileValue(path, tag) if path else ""

    def fileForInstance(self, sopInstanceUID):
        """The file of an instance, "" when it is not in the database (L2335-2352)."""
        for path, row in self._images.items():
            if row["sop"] == sopInstanceUID:
                return path
        return ""

    def _column(self, column, where, value, hits=-1):
        found = [row[column] if column != "path" else path for path, row in self._images.items() if row[where] == value]
        found = list(dict.fromkeys(found))
        return tuple(found[:hits] if hits > 0 else found)

    def filesForSeries(self, seriesUID, hits=-1):
        """No ORDER BY in the query (L2282-2306): insertion order; a tuple, as PythonQt
        gives a QStringList."""
        return self._column("path", "series", seriesUID, hits)

    def instancesForSeries(self, seriesUID, hits=-1):
        return self._column("sop", "series", seriesUID, hits)

    def seriesForStudy(self, studyUID):
        """L2237-2254."""
        return self._column("series", "study", studyUID)

    def studiesForPatient(self, patientUID):
        """Studies of a patient given by its database key (what ``patients()`` returns;
        L1830-1846)."""
        return self._column("study", "patient", patientUID)

    def patients(self):
        """The database's patient keys (Patients.UID row ids as text), not DICOM Patient IDs
        (L1812-1827)."""
        return tuple(dict.fromkeys(row["patient"] for row in self._images.values()))


class ctkDICOMIndexer(qt.QObject):
    """ctkDICOMIndexer (Libs/DICOM/Core/ctkDICOMIndexer.cpp): addDirectory walks the folder
    recursively and synchronously; files DCMTK cannot read are skipped with a warning; with
    ``copyFiles`` each file is stored by ctkDICOMDatabase::storeDatasetFile (L700-714) as
    ``dicom/<md5(study)[:8]>/<md5(series)[:8]>/<md5(sop)>.dcm`` under the database folder
    (internalStoragePath, L672-698, with UseShortStoragePath, the default).  addDirectory
    L473-502, the worker processIndexingRequest L159-257."""

    def __init__(self, *args):
        super().__init__()
        self._database = None

    def setDatabase(self, database):
        self._database = database

    def addDirectory(self, *args):
        if isinstance(args[0], ctkDICOMDatabase):
            database, directory, copyFiles = args[0], args[1], (args[2] if len(args) > 2 else False)
        else:
            database, directory, copyFiles = self._database, args[0], (args[1] if len(args) > 1 else False)
        for root, _, names in os.walk(str(directory)):
            for name in sorted(names):
                self.addFile(database, os.path.join(root, name), copyFiles)

    def addFile(self, database, filePath, copyFile=False):
        header = database._header(filePath)
        if header is None or "SOPInstanceUID" not in header:
            logging.warning(f"Could not read DICOM file: {filePath}")
            return
        path = str(filePath)
        if copyFile:
            def md5(uid):
                return hashlib.md5(str(uid).encode()).hexdigest()

            target = Path(database.databaseDirectory, "dicom", md5(header.get("StudyInstanceUID", ""))[:8],
                          md5(header.get("SeriesInstanceUID", ""))[:8], md5(header.SOPInstanceUID) + ".dcm")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            path = str(target)
        database.insert(path)

    def waitForImportFinished(self, msecTimeout=-1):
        return True


class ctkMessageBox(qt.QMessageBox):
    """ctkMessageBox: a QMessageBox with a "don't show again" setting
    (``dontShowAgainSettingsKey``); ``exec_`` returns the user's button."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.dontShowAgainSettingsKey = ""
