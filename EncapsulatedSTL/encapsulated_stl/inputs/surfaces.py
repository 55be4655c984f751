"""Surfaces meshed elsewhere, as a viewer hands them over, to Encapsulated STL objects.

3D Slicer's segments and model nodes are triangles in its world RAS (mm), drawn on a
volume that may be shown away from its DICOM slice positions (a tilted or unevenly
spaced CT).  :func:`surface_models` takes such surfaces to exact patient LPS once
(:func:`~encapsulated_stl.series.acquisition_geometry.patient_lps_mapping`) and wraps
each as an Encapsulated STL object of one series, as :mod:`.segments` does for the
segments of a file.  The viewer's own code only converts its nodes to :class:`Surface`
and its volume to a :class:`~encapsulated_stl.series.acquisition_geometry.ShownVolume`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np

from ..errors import EncapsulatedSTLError
from ..files import safe_file_stem
from ..iod import codes
from ..iod.encapsulate import ModelMetadata, NewStudy, encapsulate_stl
from ..iod.model import EncapsulatedModel
from ..iod.values import fitted
from ..iod.versions import new_version
from ..obj.encapsulate import encapsulate_obj, segments_obj
from ..series.acquisition_geometry import ShownVolume, lps_from_ras, patient_lps_mapping
from ..series.source_series import SourceSeries
from ..stl.format import binary_stl_bytes


@dataclass(frozen=True)
class Surface:
    """One closed surface: ``triangles_ras`` is ``(n, 3, 3)`` world RAS (mm); colour sRGB 0..1."""

    name: str
    triangles_ras: np.ndarray
    color: tuple[float, float, float] | None = None
    opacity: float | None = None


def merged_surface(surfaces: Sequence[Surface], name: str) -> Surface:
    """All surfaces as one, named ``name``, with no colour or opacity of its own."""
    return Surface(name, np.concatenate([s.triangles_ras for s in surfaces]))


def surface_models(
    surfaces: Sequence[Surface],
    source: SourceSeries | None = None,
    shown: ShownVolume | None = None,
    metadata: ModelMetadata | None = None,
    new_study: NewStudy | None = None,
    *,
    made_here: bool = False,
    notice: Callable[[str], None] | None = None,
    explain: Callable[[str], None] | None = None,
    file_format: str = "stl",
) -> list:
    """One Encapsulated STL object per surface, in exact patient LPS, one series (or,
    with ``file_format="obj"``, one Encapsulated OBJ holding them all and its MTL).

    Parameters
    ----------
    surfaces:
        The surfaces in world RAS (mm), in output order (Instance Number 1, 2...).
    source:
        The series the surfaces were drawn on (headers), or ``None``: then the
        objects share one new study and Frame of Reference (``new_study``).
    shown:
        How the viewer showed ``source``; checked once, and vertices mapped through
        the exact slice geometry where it was shown elsewhere.
    metadata:
        As for :func:`~encapsulated_stl.iod.encapsulate.encapsulate_stl`.  A
        ``content_description`` given with several surfaces becomes
        "description: surface name"; without one, the surface's name.  Colour and
        opacity given override each surface's.
    made_here:
        The surfaces were made by this software (a segmentation's conversion), so
        Derivation Algorithm Sequence is written; ``False`` for a mesh made elsewhere.
    notice:
        Told, once, what was left out rather than invented, and for each surface that
        would not print as written, why (:mod:`~encapsulated_stl.mesh.printability`).
    explain:
        Told the geometry check's sentence.
    file_format:
        ``stl``, or ``obj``: every surface a group of one OBJ named after it, with a
        material of its colour and opacity in one MTL (names made unique), the OBJ
        object first (:func:`~encapsulated_stl.obj.encapsulate.encapsulate_obj`).

    Raises
    ------
    EncapsulatedSTLError
        Unknown units, a value its attribute cannot hold, no Patient ID without a
        source, or a surface that cannot be written (named).
    """
    metadata = metadata or ModelMetadata()
    study = new_study or NewStudy()
    if not surfaces:
        raise EncapsulatedSTLError("no surfaces to export")
    millimetres = codes.UNIT_MILLIMETRES[codes.units_key(metadata.units)]
    if source is None and study.study_instance_uid is None:  # one new study for every object
        study = NewStudy(**{**study.__dict__, "study_instance_uid": hd.UID(),
                            "frame_of_reference_uid": study.frame_of_reference_uid or hd.UID()})
    to_lps, explanation = patient_lps_mapping(source, shown)
    if explanation and explain is not None:
        explain(explanation)
    series_uid = metadata.series_instance_uid or hd.UID()
    group_uid = metadata.model_group_uid or (hd.UID() if len(surfaces) > 1 else None)
    family = codes.ALGORITHM_FAMILY_MANUAL if made_here else None
    if file_format == "obj":
        return _obj_models(surfaces, source, metadata.replace(series_instance_uid=series_uid), study,
                           lambda ras: to_lps(ras) / millimetres, family, notice)
    if file_format != "stl":
        raise EncapsulatedSTLError(f"unknown model format {file_format!r} (stl or obj)")
    datasets = []
    for number, surface in enumerate(surfaces, start=1):
        if len(surfaces) > 1 and metadata.content_description:
            description = fitted(f"{metadata.content_description}: {surface.name}", "ContentDescription")
        else:
            description = metadata.content_description or fitted(surface.name, "ContentDescription")
        fields = metadata.replace(
            content_description=description, series_instance_uid=series_uid, instance_number=number,
            model_group_uid=group_uid,
            color=metadata.color if metadata.color is not None else surface.color,
            opacity=metadata.opacity if metadata.opacity is not None else surface.opacity)
        try:
            stl = binary_stl_bytes(to_lps(surface.triangles_ras) / millimetres)
            datasets.append(encapsulate_stl(stl, source, fields, study, algorithm_family=family,
                                            notice=notice if number == 1 else None))
        except ValueError as error:
            raise EncapsulatedSTLError(f"'{surface.name}': {error}") from None
        _tell_if_unprintable(surface.name, stl, notice)
    return datasets


def _obj_models(surfaces, source, metadata, study, to_file, family, notice) -> list:
    """The surfaces as the groups of one OBJ (file units, LPS) with their colours and
    opacities in its MTL: :func:`surface_models` with ``file_format="obj"``."""
    names = [surface.name for surface in surfaces]
    stem = safe_file_stem(metadata.series_description or names[0], 48) or "model"
    library = f"{stem}.mtl"
    groups = []
    for name, surface in zip(names, surfaces):
        triangles = np.asarray(to_file(surface.triangles_ras), np.float32)
        groups.append((name, metadata.color if metadata.color is not None else surface.color,
                       metadata.opacity if metadata.opacity is not None else surface.opacity, triangles))
        _tell_if_unprintable(name, binary_stl_bytes(triangles), notice)
    obj, mtl = segments_obj(groups, library)
    description = metadata.content_description or fitted(", ".join(names), "ContentDescription")
    try:
        return encapsulate_obj(obj, [(mtl, library)], source,
                               metadata.replace(content_description=description, color=None, opacity=None),
                               study, algorithm_family=family, notice=notice)
    except ValueError as error:
        raise EncapsulatedSTLError(str(error)) from None


class UnprintableSurface(str):
    """A notice that a surface would not print as it is: the text, with the surface's
    ``name`` and ``problems`` (as ``check`` words them), for a caller that asks the user
    before writing (Slicer's export dialog)."""

    name: str
    problems: list

    def __new__(cls, name: str, problems: list[str]):
        notice = super().__new__(cls, f"'{name}' would not print as it is: {'; '.join(problems)} "
                                      "(encapsulated-stl check tells more)")
        notice.name, notice.problems = name, list(problems)
        return notice


def _tell_if_unprintable(name: str, stl: bytes, notice: Callable[[str], None] | None) -> None:
    """Tell ``notice`` (an :class:`UnprintableSurface`) when the surface as written (float32
    STL) would not print."""
    if notice is None:
        return
    from ..mesh.printability import check_printability
    from ..stl.format import parse_binary_stl

    problems = check_printability(parse_binary_stl(stl, check_values=False).triangles).problems
    if problems:
        notice(UnprintableSurface(name, problems))


def surface_versions(
    surfaces: Sequence[Surface],
    earlier: Sequence[Sequence[EncapsulatedModel]],
    purpose: str = "edited",
    metadata: ModelMetadata | None = None,
    *,
    notice: Callable[[str], None] | None = None,
) -> list:
    """New versions of the objects surfaces were loaded from (see
    :func:`~encapsulated_stl.iod.versions.new_version`), one series.

    Parameters
    ----------
    surfaces:
        The surfaces in world RAS (mm), as edited in the viewer.
    earlier:
        For each surface, the object(s) it is a new version of; all of one study and
        Frame of Reference.  The viewer showed them by the RAS/LPS flip alone, so the
        surfaces go back to LPS by the same flip.
    metadata:
        As for :func:`surface_models`; ``None`` fields (``units`` included) are the
        earlier object's.  Each surface's colour and opacity are kept.

    Raises
    ------
    EncapsulatedSTLError
        As :func:`~encapsulated_stl.iod.encapsulate.revise_stl`, naming the surface.
    """
    metadata = metadata or ModelMetadata(units=None)
    if not surfaces or len(surfaces) != len(earlier):
        raise EncapsulatedSTLError("give one list of earlier objects per surface")
    series_uid = metadata.series_instance_uid or hd.UID()
    datasets = []
    for number, (surface, before) in enumerate(zip(surfaces, earlier), start=1):
        units = metadata.units or before[0].units or "mm"
        fields = metadata.replace(
            units=units, series_instance_uid=series_uid, instance_number=number,
            color=metadata.color if metadata.color is not None else surface.color,
            opacity=metadata.opacity if metadata.opacity is not None else surface.opacity)
        try:
            stl = binary_stl_bytes(lps_from_ras(surface.triangles_ras) / codes.UNIT_MILLIMETRES[codes.units_key(units)])
            datasets.append(new_version(stl, list(before), purpose, fields, notice=notice))
        except ValueError as error:
            raise EncapsulatedSTLError(f"'{surface.name}': {error}") from None
        except EncapsulatedSTLError as error:
            raise EncapsulatedSTLError(f"'{surface.name}': {error.reason}", error.path) from None
        _tell_if_unprintable(surface.name, stl, notice)
    return datasets
