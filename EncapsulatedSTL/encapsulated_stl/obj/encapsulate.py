"""Build an Encapsulated OBJ object and the Encapsulated MTL object its ``mtllib`` names,
as one series: what ``wrap``, ``from-ct``, ``from-seg`` and the Slicer exporter write for
a model in colour."""

from __future__ import annotations

import dataclasses
import os
import posixpath
from collections.abc import Callable, Sequence
from pathlib import Path

import highdicom as hd
from pydicom.dataset import Dataset

from ..errors import ObjFormatError
from ..iod.encapsulate import ModelMetadata, NewStudy, encapsulate_stl
from ..stl.format import read_stl_file
from .format import Material, ObjModel, mtl_bytes, obj_bytes, read_mtl, read_obj
from .sop import EncapsulatedMTL, EncapsulatedOBJ


def encapsulate_obj(
    obj: bytes,
    materials: Sequence[tuple[bytes, str]],
    source=None,
    metadata: ModelMetadata | None = None,
    new_study: NewStudy | None = None,
    *,
    notice: Callable[[str], None] | None = None,
    path=None,
    **arguments,
) -> list[Dataset]:
    """Wrap OBJ bytes and the MTL files they name as objects of one series: the OBJ
    first (Instance Number as ``metadata`` says), then each MTL (numbered after it),
    the OBJ referencing each by its ``mtllib`` name.

    Parameters
    ----------
    obj:
        The OBJ file's bytes, stored unchanged; coordinates in ``metadata.units`` in
        the source's patient system (LPS).
    materials:
        ``(mtl_bytes, name)`` for every material library the OBJ names (``mtllib
        name``), each stored unchanged.
    source, metadata, new_study, notice, path, arguments:
        As :func:`.iod.encapsulate.encapsulate_stl`; both objects share them.

    Returns
    -------
    list[pydicom.dataset.Dataset]
        The OBJ object, then the MTL objects.
    """
    metadata = metadata or ModelMetadata()
    new_study = dataclasses.replace(
        new_study or NewStudy(),
        study_instance_uid=(new_study.study_instance_uid if new_study else None) or hd.UID(),
        frame_of_reference_uid=(new_study.frame_of_reference_uid if new_study else None) or hd.UID(),
    )
    metadata = metadata.replace(series_instance_uid=metadata.series_instance_uid or hd.UID())
    libraries = []
    for number, (mtl, name) in enumerate(materials, start=metadata.instance_number + 1):
        # no notice: the OBJ copies the same patient and study and tells what was left out, once
        library = encapsulate_stl(
            mtl, source, metadata.replace(icon=False, instance_number=number), new_study,
            iod=EncapsulatedMTL, path=path, **arguments)
        metadata = metadata.replace(series_number=int(library.SeriesNumber))
        libraries.append((library, name))
    model = encapsulate_stl(obj, source, metadata, new_study, iod=EncapsulatedOBJ, notice=notice,
                            path=path, referenced_documents=libraries, **arguments)
    return [model] + [library for library, _name in libraries]


def segments_obj(
    segments: Sequence[tuple[str, object, float | None, object]],
    library_name: str,
) -> tuple[bytes, bytes]:
    """One OBJ holding every segment as a named group with its own material, and the
    MTL giving each its colour and opacity.

    Parameters
    ----------
    segments:
        ``(name, rgb, opacity, triangles)``: sRGB in 0..1 (or ``None``), opacity in
        0..1 (or ``None``), ``(n, 3, 3)`` triangles in the file's units (LPS).
    library_name:
        The MTL's file name, written as the OBJ's ``mtllib``.

    Groups and materials are found by name, so a repeated name is numbered
    (``Liver``, ``Liver 2``).
    """
    materials, groups = [], []
    names = unique_names([name for name, _rgb, _opacity, _triangles in segments])
    for name, (_name, rgb, opacity, triangles) in zip(names, segments):
        materials.append(Material(name, tuple(float(c) for c in rgb) if rgb is not None else None,
                                  None if opacity is None else float(opacity)))
        groups.append((name, name, triangles))
    return obj_bytes(groups, library_name), mtl_bytes(materials)


def read_obj_files(path: str | os.PathLike) -> tuple[bytes, ObjModel, list[tuple[bytes, str, Path]]]:
    """An OBJ file's bytes, the model they hold, and every material library its ``mtllib``
    lines name, read from beside it: ``(obj, model, [(mtl, name, mtl_path)])``, all checked.

    Raises
    ------
    ObjFormatError
        A malformed OBJ or MTL, a library that is missing or that names texture maps
        (their images would be separate DICOM objects, PS3.3 A.8.5.4, which this
        software does not write).
    """
    path = Path(path)
    obj = bytes(read_stl_file(path, ObjFormatError))
    libraries, model = [], read_obj(obj, path)
    for name in model.material_libraries:
        parts = posixpath.normpath(name.replace("\\", "/"))
        if posixpath.isabs(parts) or parts.startswith(".."):
            raise ObjFormatError(f"mtllib names {name!r}, outside the OBJ's folder: a relative URI in "
                                 "DICOM must name a file beside the model", path)
        library_path = path.parent / parts
        if not library_path.exists():
            raise ObjFormatError(f"mtllib names {name!r}, but {library_path} does not exist: the "
                                 "materials go with the model, so give the OBJ with its MTL", path)
        mtl = bytes(read_stl_file(library_path, ObjFormatError))
        textures = [t for material in read_mtl(mtl, library_path).values() for t in material.textures]
        if textures:
            raise ObjFormatError(
                f"its materials name texture maps ({', '.join(dict.fromkeys(textures))}): DICOM stores "
                "those as separate Multi-frame True Color images (PS3.3 A.8.5.4), which this software "
                "does not write; remove the map_ statements to store the colours alone", library_path)
        libraries.append((mtl, name, library_path))
    return obj, model, libraries


def material_library_paths(output: str | os.PathLike, count: int) -> list[Path]:
    """Where the command line writes the MTL objects of an OBJ object written to ``output``:
    ``OUT-mtl.dcm``, then ``OUT-mtl2.dcm``..."""
    output = Path(output)
    return [output.with_name(f"{output.stem}-mtl{'' if k == 1 else k}{output.suffix or '.dcm'}")
            for k in range(1, count + 1)]


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with later repeats numbered (``Liver``, ``Liver 2``): OBJ groups and
    materials are found by name."""
    taken, unique = set(), []
    for name in names:
        candidate, number = name, 1
        while candidate.casefold() in taken:
            number += 1
            candidate = f"{name} {number}"
        taken.add(candidate.casefold())
        unique.append(candidate)
    return unique
