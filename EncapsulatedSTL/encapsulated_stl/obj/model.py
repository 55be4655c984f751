"""Read an Encapsulated OBJ object's materials: the Encapsulated MTL objects it names.

Ours and the standard's way: the OBJ object lists each MTL object in Referenced
Instance Sequence (0008,114A) with its ``mtllib`` name (PS3.3 C.24.2), and they may
arrive in any series.  dcm4che's pdf2dcm and Orthanc's create-dicom write no such
reference; for their objects the MTL objects of the same series, else of the same
study, that define the materials the OBJ uses stand in, and the reader says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from ..errors import NotEncapsulatedSTLError, ObjFormatError
from ..iod.document import ENCAPSULATED_MTL_SOP_CLASS_UID, MTL_MIME_TYPE, shown, text_in_document
from ..iod.model import EncapsulatedModel, check_dataset, read_dataset
from .format import Material, mtl_document_problem, read_mtl


@dataclass
class MaterialLibrary:
    """An Encapsulated MTL object, read: its materials by name."""

    path: Path | None
    dataset: Dataset
    mtl: memoryview
    materials: dict[str, Material]
    notes: list[str] = field(default_factory=list)

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.get("SOPInstanceUID", ""))


def library_from_dataset(dataset: Dataset, path=None) -> MaterialLibrary:
    """Check and parse an Encapsulated MTL dataset.

    Raises
    ------
    NotEncapsulatedSTLError
        Not an Encapsulated MTL object, no document, or one in another format.
    ObjFormatError
        The MTL is malformed.
    """
    path = Path(path) if path is not None else None
    check_dataset(dataset, path, (ENCAPSULATED_MTL_SOP_CLASS_UID,))
    mime = str(dataset.get("MIMETypeOfEncapsulatedDocument", "") or "")
    document, length_problem = text_in_document(dataset)
    notes = [length_problem] if length_problem else []
    problem = mtl_document_problem(document)
    if problem:
        raise NotEncapsulatedSTLError(f"an Encapsulated MTL object, but {problem}", path)
    if mime.split(";")[0].strip().lower() != MTL_MIME_TYPE:
        notes.append(f"MIME Type of Encapsulated Document (0042,0012) is {shown(mime)}, not model/mtl; "
                     "the document is a valid MTL and was read as one")
    try:
        materials = read_mtl(document, path)
    except ObjFormatError as error:
        raise ObjFormatError(f"encapsulated MTL is invalid: {error.reason}", path) from None
    return MaterialLibrary(path, dataset, document, materials, notes)


def read_material_library(path: str | os.PathLike) -> MaterialLibrary:
    """Read, check and parse an Encapsulated MTL file from any producer."""
    return library_from_dataset(read_dataset(path, (ENCAPSULATED_MTL_SOP_CLASS_UID,)), path)


@dataclass
class ModelMaterials:
    """The materials an OBJ model's groups use, and where they were found."""

    materials: dict[str, Material]
    libraries: list[MaterialLibrary]
    missing: list[str]
    """Names of materials the groups use that no library found defines."""
    notes: list[str]


def materials_of(model: EncapsulatedModel, libraries: Iterable[MaterialLibrary]) -> ModelMaterials:
    """The materials of ``model`` (an OBJ) among ``libraries`` (MTL objects found
    beside it, in any series).

    The libraries the object references by SOP Instance UID are used, in the order of
    its references; an object that references none (dcm4che's and Orthanc's) uses the
    libraries of its own series, else of its study, and a note says so.
    """
    libraries = list(libraries)
    by_uid = {library.sop_instance_uid: library for library in libraries}
    notes: list[str] = []
    referenced = [uid for _class, uid, _uri in model.referenced_documents if uid]
    chosen = [by_uid[uid] for uid in referenced if uid in by_uid]
    absent = [uid for uid in referenced if uid not in by_uid]
    if absent:
        notes.append(f"{len(absent)} referenced material librar{'y was' if len(absent) == 1 else 'ies were'} "
                     f"not found ({', '.join(absent)})")
    if not referenced:
        for scope, key in (("series", "SeriesInstanceUID"), ("study", "StudyInstanceUID")):
            own = str(model.dataset.get(key, "") or "")
            chosen = [lib for lib in libraries if own and str(lib.dataset.get(key, "") or "") == own]
            if chosen:
                notes.append(f"the object names no material library (Referenced Instance Sequence); the "
                             f"{len(chosen)} Encapsulated MTL object(s) of its {scope} were used")
                break
    materials: dict[str, Material] = {}
    for library in chosen:
        for name, material in library.materials.items():
            materials.setdefault(name, material)
    used = dict.fromkeys(group.material for group in model.groups if group.material)
    missing = [name for name in used if name not in materials]
    textures = dict.fromkeys(t for name in used if name in materials for t in materials[name].textures)
    if textures:
        notes.append(f"the texture maps the materials name ({', '.join(textures)}) are not read: the groups "
                     "take their materials' plain colours (Kd)")
    return ModelMaterials({name: materials[name] for name in used if name in materials}, chosen, missing, notes)


def material_library_files(folder: str | os.PathLike, limit: int = 10000) -> list[Path]:
    """The files in ``folder`` that may be Encapsulated MTL objects: those whose first
    kilobyte names the MTL SOP Class (in the File Meta Information every DICOM file
    starts with), so a folder of images costs one small read per file.  At most
    ``limit`` files are looked at; FIFOs and devices are never opened."""
    found = []
    for count, candidate in enumerate(sorted(Path(folder).iterdir())):
        if count >= limit:
            break
        if not candidate.is_file():  # a FIFO would block the read
            continue
        try:
            with open(candidate, "rb") as stream:
                if _MTL_CLASS in stream.read(1024):
                    found.append(candidate)
        except OSError:
            continue
    return found


def libraries_beside(path: str | os.PathLike) -> list[MaterialLibrary]:
    """The readable Encapsulated MTL objects in the folder of ``path``
    (:func:`material_library_files`); unreadable ones are skipped."""
    found = []
    for candidate in material_library_files(Path(path).parent):
        try:
            found.append(read_material_library(candidate))
        except (NotEncapsulatedSTLError, ObjFormatError):
            continue
    return found


_MTL_CLASS = ENCAPSULATED_MTL_SOP_CLASS_UID.encode()
