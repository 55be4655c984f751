"""Segments of a segmentation file, and Encapsulated STL models made from them.

A :class:`.segment.Segment` is one structure as a voxel volume with its exact voxel-index
-> LPS geometry (:mod:`.segment`, which the readers share).  :func:`read_segments`
recognises the file type and hands it to its reader, imported only then, so no reader
imports this module back:

================================  =====================================
input                             reader
================================  =====================================
DICOM SEG (binary, fractional,    :mod:`.dicom_seg`
label map)
DICOM RTSTRUCT                    :mod:`.rtstruct` (needs the referenced series)
NIfTI ``.nii`` / ``.nii.gz``      :mod:`.labelmaps`
NRRD ``.nrrd`` / ``.nhdr``,       :mod:`.labelmaps`
Slicer ``.seg.nrrd``
================================  =====================================

:func:`models_from_segments` meshes the chosen segments (each alone, or merged
into one) with :func:`~encapsulated_stl.mesh.surface.extract_surface` and wraps every mesh as an
Encapsulated STL object linked to the source series.  Segments exported together
share one Series Instance UID and one Model Group UID.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from ..errors import EncapsulatedSTLError
from ..files import check_input, check_memory, safe_file_stem
from ..iod import codes
from ..iod.encapsulate import ModelMetadata, NewStudy, encapsulate_stl
from ..iod.values import fitted
from ..mesh.surface import DEFAULT_SMOOTHING, check_decimate, check_smoothing, extract_surface_mesh
from ..obj.encapsulate import encapsulate_obj, segments_obj
from ..series.slice_geometry import SliceGeometry
from ..series.source_series import SourceSeries, reference_series, series_numbers
from ..stl.format import binary_stl_from_mesh
from .segment import (
    LABEL_MAP_SEGMENTATION_STORAGE,
    MAX_SEGMENTS,
    RT_STRUCTURE_SET_STORAGE,
    SEGMENTATION_STORAGE,
    Segment,
    SegmentationError,
    one_line,
    quiet_reading,
    read_dicom_header,
)

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_NRRD_SUFFIXES = (".nrrd", ".nhdr")


def segmentation_kind(path: str | os.PathLike) -> str:
    """What ``path`` holds: ``"seg"``, ``"rtstruct"``, ``"nifti"`` or ``"nrrd"``.

    NIfTI and NRRD are recognised by their file name; DICOM by its SOP Class.

    Raises
    ------
    SegmentationError
        The file does not exist or is none of these.
    """
    path = Path(path)
    check_input(path, SegmentationError)  # a FIFO or device is refused here, unread
    name = path.name.lower()
    if name.endswith(_NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(_NRRD_SUFFIXES):
        return "nrrd"
    dataset = read_dicom_header(path, specific_tags=["SOPClassUID", "Modality"])
    with quiet_reading():
        try:
            sop_class = one_line(dataset.SOPClassUID) if dataset is not None and "SOPClassUID" in dataset else ""
        except Exception:  # a malformed value: no SOP Class to go by
            sop_class = ""
    if not sop_class:
        raise SegmentationError(
            "unknown file type: expected DICOM SEG or RTSTRUCT, NIfTI (.nii, .nii.gz) or "
            "NRRD (.nrrd, .nhdr, Slicer .seg.nrrd)", path)
    if sop_class in (SEGMENTATION_STORAGE, LABEL_MAP_SEGMENTATION_STORAGE):
        return "seg"
    if sop_class == RT_STRUCTURE_SET_STORAGE:
        return "rtstruct"
    with quiet_reading():
        try:
            modality = one_line(dataset.get("Modality", "?"))
        except Exception:
            modality = "?"
    raise SegmentationError(
        f"DICOM {modality} object (SOP Class {one_line(sop_class)[:64]}) is not a "
        "segmentation; expected DICOM SEG or RTSTRUCT", path)


def segmentation_source(path: str | os.PathLike) -> list[tuple[Dataset, codes.Code]]:
    """The DICOM segmentation instance models are made from, with its purpose of
    reference: a SEG (an image IOD) is a source image, an RTSTRUCT a source document.
    Empty for NIfTI and NRRD, which are not DICOM instances."""
    kind = segmentation_kind(path)
    if kind not in ("seg", "rtstruct"):
        return []
    header = read_dicom_header(path, specific_tags=[
        "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber"])
    purpose = codes.SOURCE_IMAGE_PURPOSE if kind == "seg" else codes.SOURCE_DOCUMENT_PURPOSE
    return [(header, purpose)] if header is not None else []


def referenced_series_uids(path: str | os.PathLike) -> list[str]:
    """Series Instance UIDs a DICOM SEG or RTSTRUCT names as its source (may be empty)."""
    dataset = read_dicom_header(path)
    if dataset is None:
        return []
    uids = []
    with quiet_reading():
        try:
            uids.extend(str(item.SeriesInstanceUID) for item in dataset.get("ReferencedSeriesSequence", [])
                        if "SeriesInstanceUID" in item)
            for frame in dataset.get("ReferencedFrameOfReferenceSequence", []):
                for study in frame.get("RTReferencedStudySequence", []):
                    for series in study.get("RTReferencedSeriesSequence", []):
                        if "SeriesInstanceUID" in series:
                            uids.append(str(series.SeriesInstanceUID))
        except Exception:  # malformed references are only a hint: the series is then asked for
            pass
    return [uid for uid in uids if uid]


def reference_stack(series: SourceSeries) -> tuple[SourceSeries, SliceGeometry]:
    """The series' image slices sorted along the normal, and their exact geometry.

    Localizers and slices of another orientation, matrix or spacing are left out,
    as :func:`~encapsulated_stl.series.volume.read_series_volume` does, but no pixel data is read.

    Raises
    ------
    SeriesError
        No cross-sectional slices, or two at one position.
    """
    from ..series.volume import image_stack

    stack, _skipped = image_stack(series, series.files[0].parent if series.files else None)
    return stack, SliceGeometry.from_datasets(stack.datasets)


def read_segments(
    path: str | os.PathLike,
    reference: SourceSeries | None = None,
) -> list[Segment]:
    """Every segment of a segmentation file, in the file's order.

    Parameters
    ----------
    path:
        DICOM SEG, RTSTRUCT, NIfTI or NRRD (``.seg.nrrd`` included).
    reference:
        The source image series (headers).  Required for RTSTRUCT (contours are
        rasterised in its slices' exact geometry); for DICOM SEG it gives the
        stack the frames are placed in, and its Frame of Reference must match.

    Raises
    ------
    SegmentationError
        Unknown or malformed file, or one that does not fit ``reference``.
    """
    kind = segmentation_kind(path)
    if kind == "nifti":
        from .labelmaps import read_nifti_segments
        return read_nifti_segments(path)
    if kind == "nrrd":
        from .labelmaps import read_nrrd_segments
        return read_nrrd_segments(path)
    if reference is None:
        if kind == "rtstruct":
            raise SegmentationError("an RTSTRUCT needs its image series: give --reference", path)
        stack = geometry = None
    else:
        stack, geometry = reference_stack(reference)
    if kind == "seg":
        from .dicom_seg import read_dicom_seg_segments
        return read_dicom_seg_segments(path, stack, geometry)
    from .rtstruct import read_rtstruct_segments
    return read_rtstruct_segments(path, stack, geometry)


def select_segments(segments: Sequence[Segment], wanted: Sequence[str] | None, path=None) -> list[Segment]:
    """The segments named by number or name (case-insensitive), in the order asked.

    ``None`` or an empty list selects every segment.

    Raises
    ------
    SegmentationError
        A requested segment is not there; the message lists those that are.
    """
    if not wanted:
        return list(segments)
    chosen: list[Segment] = []
    for key in wanted:
        text = str(key).strip()
        matches = [s for s in segments if s.name.casefold() == text.casefold()]
        if not matches and text.isdigit():
            matches = [s for s in segments if s.number == int(text)]
        if not matches:
            listing = ", ".join(f"{s.number} '{s.name}'" for s in segments) or "none"
            raise SegmentationError(f"no segment '{text}'; segments: {listing}", path)
        chosen.extend(s for s in matches if s not in chosen)
    return chosen


def _slabs_of_one_stack(segments: Sequence[Segment]):
    """The stack that segments on runs of its slices make together, and where each starts.

    The DICOM SEG reader gives each segment only the slices of its frames (plus
    one empty slice each side), as a :class:`SliceGeometry` holding those
    slices' own positions.  Returns ``(geometry, starts)`` for the union of the
    slices, or ``None`` when the segments are not such runs of one stack.
    """
    geometries = [s.geometry for s in segments]
    first = geometries[0]
    if not all(isinstance(g, SliceGeometry) for g in geometries) \
            or len({s.data.shape[1:] for s in segments}) != 1:
        return None
    for g in geometries[1:]:
        if not (np.allclose(g.pixel_spacing, first.pixel_spacing, rtol=0, atol=1e-9)
                and np.allclose(g.row_direction, first.row_direction, rtol=0, atol=1e-9)
                and np.allclose(g.column_direction, first.column_direction, rtol=0, atol=1e-9)):
            return None
    ascending = next((bool((g.positions[-1] - g.positions[0]) @ first.normal > 0)
                      for g in geometries if g.slice_count > 1), True)
    positions = np.concatenate([g.positions for g in geometries])
    heights = positions @ first.normal * (1.0 if ascending else -1.0)
    # a slice is the same in two runs when within a micrometre (they are copies)
    keys, where = np.unique(np.round(heights, 3), return_index=True)
    starts = np.searchsorted(keys, [np.round(g.positions[0] @ first.normal * (1.0 if ascending else -1.0), 3)
                                    for g in geometries])
    for g, start in zip(geometries, starts):
        run = positions[where[start:start + g.slice_count]]
        if run.shape != g.positions.shape or not np.allclose(run, g.positions, rtol=0, atol=1e-3):
            return None  # not a run of the union's slices
    return replace(first, positions=positions[where]), starts


def merge_segments(segments: Sequence[Segment]) -> Segment:
    """One segment that is the union of ``segments`` (all from one file, one grid).

    Fractions are combined by their maximum, so the merged surface follows each
    part's own surface where they do not touch.
    """
    first = segments[0]
    if len(segments) == 1:
        return first
    geometry = first.geometry
    if all(s.label_value is not None and s.data is first.data for s in segments):
        # labels of one map: one pass over it, however many are merged
        volume = np.isin(first.data, [s.label_value for s in segments]).astype(np.float32)
    elif all(s.data.shape == first.data.shape for s in segments):
        volume = first.volume.copy()
        for other in segments[1:]:
            np.maximum(volume, other.volume, out=volume)
    else:
        stack = _slabs_of_one_stack(segments)
        if stack is None:
            raise SegmentationError("segments on different grids cannot be merged", first.path)
        geometry, starts = stack
        shape = (geometry.slice_count,) + first.data.shape[1:]
        check_memory(4 * int(np.prod(shape, dtype=np.float64)), "merging the segments", first.path,
                     SegmentationError)
        volume = np.zeros(shape, dtype=np.float32)
        for start, other in zip(starts, segments):
            part = volume[start:start + other.data.shape[0]]
            np.maximum(part, other.volume, out=part)
    return replace(
        first,
        number=first.number,
        name=" + ".join(s.name for s in segments),
        data=volume,
        geometry=geometry,
        label_value=None,
        scale=1.0,
        description=None,
        box=None,
    )


# --- models ----------------------------------------------------------------------


def file_name_for(segment: Segment, merged: bool = False) -> str:
    """``<number>_<name>.dcm`` with the name reduced to safe characters."""
    stem = safe_file_stem(segment.name) or "segment"
    return f"merged_{stem}.dcm" if merged else f"{segment.number}_{stem}.dcm"


@dataclass
class SegmentModel:
    """A segment's mesh wrapped as an Encapsulated STL object, ready to save."""

    segment: Segment
    dataset: object
    file_name: str
    triangle_count: int
    notices: list[str] = field(default_factory=list)


def models_from_segments(
    segments: Sequence[Segment],
    source: SourceSeries,
    metadata: ModelMetadata | None = None,
    *,
    merge: bool = False,
    skip_empty: bool = True,
    smoothing: float | None = DEFAULT_SMOOTHING,
    decimate: int | None = None,
    notice: Callable[[str], None] | None = None,
    progress=None,
    made_from: Sequence[tuple[Dataset, codes.Code]] = (),
    used_series_numbers: Iterable[int] = (),
    patient_id: str | None = None,
    file_format: str = "stl",
) -> list[SegmentModel]:
    """Mesh each segment (or their union) and wrap it as Encapsulated STL, or all of
    them as one Encapsulated OBJ with its Encapsulated MTL.

    Parameters
    ----------
    segments:
        Segments of one segmentation, in output order.
    source:
        The source image series (headers); every model references all of its
        instances and takes its patient, study and Frame of Reference.
    metadata:
        What the user said about the models.  ``content_description`` and
        ``series_description`` given by the user are kept, with the segment name
        added to the description; the colour, instance number and one shared
        Model Group UID and Series Instance UID are set per segment.
    merge:
        Make one model of all segments together.
    skip_empty:
        Leave out segments with no voxel inside (reported through ``notice``);
        when False, or when every segment is empty, an empty segment is an error.
    made_from:
        The segmentation instance the segments were read from, with its purpose of
        reference (:func:`segmentation_source`), listed after the images.
    used_series_numbers:
        Series Numbers to avoid beyond the source's study (see :func:`~encapsulated_stl.iod.encapsulate.encapsulate_stl`).
    patient_id:
        Patient ID for a source series that has none.
    file_format:
        ``stl``: one Encapsulated STL object per segment.  ``obj``: one Encapsulated
        OBJ object holding every segment as a group named after it, with its own
        material, and the Encapsulated MTL object giving each material the
        segment's colour (:func:`~encapsulated_stl.obj.encapsulate.encapsulate_obj`):
        two models, the OBJ first, each carrying every segment.
    smoothing, decimate, progress:
        Passed to :func:`~encapsulated_stl.mesh.surface.extract_surface`; ``smoothing`` defaults to
        :data:`~encapsulated_stl.mesh.surface.DEFAULT_SMOOTHING` (windowed sinc, which neither shrinks
        nor shifts the surface); ``None`` or 0 turns it off.  ``smoothing`` must
        be in 0..1 and ``decimate`` at least 4 (a tetrahedron), else nothing is
        meshed.

    Raises
    ------
    SegmentationError
        An empty segment that may not be skipped, nothing left to export, more
        than :data:`MAX_SEGMENTS` models, a smoothing factor or decimation target
        out of range, or a surface that must not be written (flat, non-finite,
        or opened by decimation; see :func:`~encapsulated_stl.mesh.surface.extract_surface_mesh`).
    """
    metadata = metadata or ModelMetadata()
    segments = list(segments)
    path = segments[0].path if segments else None
    try:
        smoothing = check_smoothing(smoothing)
        decimate = check_decimate(decimate)
    except EncapsulatedSTLError as error:
        raise SegmentationError(error.reason, path) from None
    if not segments:
        raise SegmentationError("no segments to export")
    if not merge and len(segments) > MAX_SEGMENTS:
        raise SegmentationError(
            f"{len(segments)} segments to export, more than the {MAX_SEGMENTS} one run writes; "
            "choose some with --segments", path)
    empty = [s for s in segments if s.is_empty]
    if empty and (not skip_empty or len(empty) == len(segments)):
        names = ", ".join(f"'{s.title}'" for s in empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        raise SegmentationError(f"segment(s) {names} are empty: no voxel inside", segments[0].path)
    for segment in empty:
        if notice is not None:
            notice(f"skipped empty segment '{segment.title}'")
    segments = [s for s in segments if not s.is_empty]
    if file_format not in ("stl", "obj"):
        raise SegmentationError(f"unknown model format {file_format!r} (stl or obj)", path)
    groups = [merge_segments(segments)] if merge else segments
    group_uid = metadata.model_group_uid or hd.UID()
    series_uid = metadata.series_instance_uid or hd.UID()
    models, meshes = [], []
    for number, segment in enumerate(groups, start=metadata.instance_number):
        part = segment.cropped(margin=1)
        try:
            points, faces = extract_surface_mesh(
                part.volume, part.geometry, part.level,
                smoothing=smoothing, decimate=decimate, progress=progress,
            )
        except EncapsulatedSTLError as error:
            raise SegmentationError(f"segment '{segment.title}': {error.reason}", segment.path) from None
        if len(faces) == 0:
            raise SegmentationError(f"segment '{segment.title}' gave no surface", segment.path)
        description = segment.name if not segment.description else f"{segment.name} ({segment.description})"
        if metadata.content_description:
            description = f"{metadata.content_description}: {description}"
        description = fitted(description, "ContentDescription")
        parameters = {
            "input": segment.path.name if segment.path else "segmentation",
            "segment": segment.title,
            "iso-level": f"{segment.level:g}",
        }
        parameters["smoothing"] = f"{smoothing or 0:g}"
        if decimate:
            parameters["decimate"] = str(decimate)
        if file_format == "obj":
            meshes.append((segment, points, faces))
            continue
        dataset = encapsulate_stl(
            binary_stl_from_mesh(points, faces),
            source,
            metadata.replace(
                content_description=description,
                color=segment.color if segment.color is not None else metadata.color,
                model_group_uid=group_uid,
                series_instance_uid=series_uid,
                instance_number=number,
            ),
            NewStudy(patient_id=patient_id),
            algorithm_parameters=parameters,
            algorithm_family=codes.ALGORITHM_FAMILY_MANUAL,
            path=segment.path,
            other_sources=made_from,
            used_series_numbers=used_series_numbers,
            notice=notice if number == metadata.instance_number else None,  # said once, not per model
        )
        models.append(SegmentModel(segment, dataset, file_name_for(segment, merge), len(faces)))
    if meshes:
        models = _obj_models(meshes, source, metadata.replace(
            model_group_uid=group_uid, series_instance_uid=series_uid), patient_id=patient_id,
            made_from=made_from, used_series_numbers=used_series_numbers, notice=notice,
            smoothing=smoothing, decimate=decimate)
    return models


def _obj_models(meshes, source, metadata: ModelMetadata, *, patient_id, made_from, used_series_numbers,
                notice, smoothing, decimate) -> list[SegmentModel]:
    """One OBJ + MTL pair of meshed segments: each a group named after the segment,
    with a material of its colour."""
    path = meshes[0][0].path
    stem = safe_file_stem(path.name if path else "segments", 48) or "segments"
    library = f"{stem}.mtl"
    obj, mtl = segments_obj([(segment.name, segment.color, None, points[faces]) for segment, points, faces in meshes],
                            library)
    titles = ", ".join(segment.title for segment, _points, _faces in meshes)
    description = fitted(f"{metadata.content_description}: {titles}" if metadata.content_description else titles,
                         "ContentDescription")
    parameters = {"input": path.name if path else "segmentation", "smoothing": f"{smoothing or 0:g}"}
    if decimate:
        parameters["decimate"] = str(decimate)
    datasets = encapsulate_obj(
        obj, [(mtl, library)], source, metadata.replace(content_description=description, color=None),
        NewStudy(patient_id=patient_id), algorithm_parameters=parameters,
        algorithm_family=codes.ALGORITHM_FAMILY_MANUAL, path=path, other_sources=made_from,
        used_series_numbers=used_series_numbers, notice=notice)
    first = meshes[0][0]  # the models hold every segment; the first stands for them
    count = sum(len(faces) for _segment, _points, faces in meshes)
    return [SegmentModel(first, datasets[0], f"{stem}_obj.dcm", count),
            SegmentModel(first, datasets[1], f"{stem}_mtl.dcm", 0)]



def segmentation_models(
    path: str | os.PathLike,
    reference: str | os.PathLike | None = None,
    *,
    series_uid: str | None = None,
    segments: Sequence[str] | None = None,
    merge: bool = False,
    smoothing: float | None = DEFAULT_SMOOTHING,
    decimate: int | None = None,
    metadata: ModelMetadata | None = None,
    patient_id: str | None = None,
    notice: Callable[[str], None] | None = None,
    progress=None,
    check_source: Callable[[SourceSeries, set[int]], set[int]] | None = None,
    file_format: str = "stl",
) -> tuple[list[SegmentModel], SourceSeries, SourceSeries]:
    """A segmentation file to models: the pipeline behind ``from-seg``, the Slicer-free
    :func:`encapsulated_stl.from_segmentation` and scripts.

    The source series is ``reference`` (a directory or one file; by default the folder
    of ``path``), the one the segmentation references where there are several; the
    chosen ``segments`` (numbers or names; every one not empty by default) are meshed
    by :func:`models_from_segments`, listing the segmentation instance among the sources.

    Parameters
    ----------
    file_format:
        ``stl`` or ``obj`` (see :func:`models_from_segments`).
    check_source:
        Called with the source's image stack and the Series Numbers of the study's
        series in sight, before any meshing: raises to stop (a Series Number the user
        gave that one of them has), returns more numbers to avoid (earlier models in the
        output folder).

    Returns
    -------
    (models, stack, series):
        The models (datasets not yet written), the sorted source slices they reference,
        and the whole source series (localizers included: files an output must not be).
    """
    path = Path(path)
    kind = segmentation_kind(path)
    preferred = referenced_series_uids(path) if kind in ("seg", "rtstruct") else []
    series = reference_series(reference if reference is not None else path.parent, series_uid, preferred)
    stack, _geometry = reference_stack(series)
    chosen = select_segments(read_segments(path, series), segments, path)
    metadata = metadata or ModelMetadata()
    if metadata.series_description is None:
        metadata = metadata.replace(series_description=fitted(f"3D models from {path.name}", "SeriesDescription"))
    made_from = segmentation_source(path)
    # the study's series in sight: beside the source, and the segmentation's own
    seen = series.study_series_numbers | series_numbers(header for header, _purpose in made_from)
    used = seen | (check_source(stack, seen) if check_source is not None else set())
    models = models_from_segments(
        chosen, stack, metadata, merge=merge, skip_empty=not segments, smoothing=smoothing,
        decimate=decimate, notice=notice, progress=progress, made_from=made_from,
        used_series_numbers=used, patient_id=patient_id, file_format=file_format,
    )
    return models, stack, series
