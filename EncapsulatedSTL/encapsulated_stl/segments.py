"""Segments of a segmentation file, and Encapsulated STL models made from them.

A :class:`Segment` is one structure (an organ, a bone, a tumour) as a voxel volume
``[k, j, i]`` with its exact voxel-index -> LPS geometry: a binary mask, a fraction
(DICOM SEG FRACTIONAL, anti-aliased RTSTRUCT contours) or one value of a label map.
:func:`read_segments` recognises the file type and hands it to its reader:

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
into one) with :func:`.surface.extract_surface` and wraps every mesh as an
Encapsulated STL object linked to the source series.  Segments exported together
share one Series Instance UID and one Model Group UID.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from . import codes
from .encapsulate import ModelMetadata, encapsulate_stl
from .errors import EncapsulatedSTLError, SeriesError
from .slice_geometry import AffineGeometry, SliceGeometry
from .source_series import SourceSeries, scan_series
from .stl import binary_stl_from_mesh
from .surface import DEFAULT_SMOOTHING, extract_surface_mesh

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"

#: Modalities that are never the image source of a segmentation.
_NOT_IMAGES = {"M3D", "DOC", "KO", "PR", "SR", "REG", "PLAN", "SEG", "RTSTRUCT", "RTPLAN",
               "RTDOSE", "RTRECORD"}


class SegmentationError(EncapsulatedSTLError):
    """A segmentation file is unreadable, of an unknown kind, or does not fit its source."""


@dataclass
class Segment:
    """One segment as voxels with their exact patient geometry.

    Attributes
    ----------
    number:
        Segment number (DICOM SEG), ROI Number (RTSTRUCT), label value (label maps)
        or 1-based position in a Slicer ``.seg.nrrd``.
    name:
        Segment label / ROI name / ``.seg.nrrd`` name.
    data:
        ``[k, j, i]`` voxels: a mask, raw fractional values or a label map.
    geometry:
        Voxel index ``(i, j, k)`` -> LPS mm (:class:`SliceGeometry` for DICOM
        stacks, :class:`AffineGeometry` for NIfTI / NRRD).
    label_value:
        When set, the segment is the voxels of ``data`` equal to it.
    scale:
        Factor from ``data`` to a fraction in 0..1 (``1 / MaximumFractionalValue``).
    level:
        Iso-level of :attr:`volume` at which the surface lies (0.5: half-way
        between inside and outside voxel centres).
    color:
        Display colour, sRGB components in 0..1, when the file gives one.
    description:
        What the file says the segment is beyond its name (property type, RT ROI
        interpreted type), if anything.
    path:
        The file the segment was read from (for messages).
    """

    number: int
    name: str
    data: np.ndarray
    geometry: object
    label_value: int | None = None
    scale: float = 1.0
    level: float = 0.5
    color: tuple[float, float, float] | None = None
    description: str | None = None
    path: Path | None = None

    @property
    def volume(self) -> np.ndarray:
        """``[k, j, i]`` float32: 1 inside, 0 outside, or the fraction inside."""
        if self.label_value is not None:
            return (self.data == self.label_value).astype(np.float32)
        if self.data.dtype == np.float32 and self.scale == 1.0:
            return self.data
        return self.data.astype(np.float32) * np.float32(self.scale)

    def _inside(self) -> np.ndarray:
        if self.label_value is not None:
            return self.data == self.label_value
        return self.data * self.scale >= self.level

    @property
    def is_empty(self) -> bool:
        """True when no voxel reaches the level, so there is no surface to make."""
        return not bool(np.any(self._inside()))

    @property
    def title(self) -> str:
        """``"<number> <name>"``, as listed and described."""
        return f"{self.number} {self.name}"

    def cropped(self, margin: int = 1) -> Segment:
        """The same segment on the smallest box holding it plus ``margin`` voxels.

        The geometry is shifted with the box, so ``lps_from_index`` of a voxel is
        unchanged; meshing the box is exact and much cheaper than the full grid.
        """
        inside = self._inside()
        if not inside.any():
            return self
        bounds = []
        for axis in range(3):
            others = tuple(a for a in range(3) if a != axis)
            hit = np.flatnonzero(inside.any(axis=others))
            bounds.append((max(hit[0] - margin, 0), min(hit[-1] + margin + 1, inside.shape[axis])))
        (k0, k1), (j0, j1), (i0, i1) = bounds
        return replace(
            self,
            data=np.ascontiguousarray(self.data[k0:k1, j0:j1, i0:i1]),
            geometry=shifted_geometry(self.geometry, i0, j0, k0, k1),
        )


def shifted_geometry(geometry, i0: int, j0: int, k0: int, k1: int | None = None):
    """Geometry of the sub-volume starting at voxel ``(i0, j0, k0)`` (up to slice ``k1``).

    Voxel ``(i, j, k)`` of the sub-volume maps to the LPS position of voxel
    ``(i + i0, j + j0, k + k0)`` of the whole: exact for sheared and unevenly
    spaced stacks, since each kept slice keeps its own ImagePositionPatient.
    """
    if isinstance(geometry, SliceGeometry):
        positions = geometry.positions[k0:k1]
        offset = geometry.in_plane_offsets(np.array([i0]), np.array([j0]))[0]
        return replace(geometry, positions=positions + offset)
    matrix = geometry.matrix.copy()
    matrix[:3, 3] = geometry.lps_from_index(np.array([[i0, j0, k0]]))[0]
    return AffineGeometry(matrix)


# --- file types -------------------------------------------------------------------

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
    if not path.is_file():
        raise SegmentationError("no such file" if not path.exists() else "not a file", path)
    name = path.name.lower()
    if name.endswith(_NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(_NRRD_SUFFIXES):
        return "nrrd"
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "Modality"])
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError):
        dataset = None
    if dataset is None or "SOPClassUID" not in dataset:
        raise SegmentationError(
            "unknown file type: expected DICOM SEG or RTSTRUCT, NIfTI (.nii, .nii.gz) or "
            "NRRD (.nrrd, .nhdr, Slicer .seg.nrrd)", path)
    sop_class = str(dataset.SOPClassUID)
    if sop_class in (SEGMENTATION_STORAGE, LABEL_MAP_SEGMENTATION_STORAGE):
        return "seg"
    if sop_class == RT_STRUCTURE_SET_STORAGE:
        return "rtstruct"
    raise SegmentationError(
        f"DICOM {dataset.get('Modality', '?')} object (SOP Class {sop_class}) is not a "
        "segmentation; expected DICOM SEG or RTSTRUCT", path)


def referenced_series_uids(path: str | os.PathLike) -> list[str]:
    """Series Instance UIDs a DICOM SEG or RTSTRUCT names as its source (may be empty)."""
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError):
        return []
    uids = [str(item.SeriesInstanceUID) for item in dataset.get("ReferencedSeriesSequence", [])
            if "SeriesInstanceUID" in item]
    for frame in dataset.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                if "SeriesInstanceUID" in series:
                    uids.append(str(series.SeriesInstanceUID))
    return uids


def reference_series(
    reference: str | os.PathLike,
    series_uid: str | None = None,
    preferred_uids: Sequence[str] = (),
) -> SourceSeries:
    """The image series a segmentation was made from.

    Parameters
    ----------
    reference:
        A directory (searched recursively) or one DICOM file standing for its
        whole series (the other instances beside it are found too).
    series_uid:
        The series to take, when given.
    preferred_uids:
        Series the segmentation itself references; the first one found is taken
        when ``series_uid`` is not given.  Segmentation objects (SEG, RTSTRUCT,
        models) in the same folder are never taken as the source.

    Raises
    ------
    SeriesError
        No image series, the named one missing, or several and none chosen.
    """
    path = Path(reference)
    if path.is_file():
        found = scan_series([path])
        if not found:
            raise SeriesError("not a DICOM file with a Series Instance UID", path)
        series_uid = series_uid or found[0].series_instance_uid
        everything = scan_series([path.parent])
    elif path.is_dir():
        everything = scan_series([path])
    else:
        raise SeriesError("no such file or directory", path)
    images = [s for s in everything if s.modality not in _NOT_IMAGES]
    listing = "; ".join(s.summary() for s in images) or "none"
    if series_uid is not None:
        for series in images:
            if series.series_instance_uid == series_uid:
                return series
        raise SeriesError(f"no image series with UID {series_uid}; series found: {listing}", path)
    for uid in preferred_uids:
        for series in images:
            if series.series_instance_uid == uid:
                return series
    if not images:
        raise SeriesError("no DICOM image series found", path)
    if len(images) > 1:
        raise SeriesError(
            f"{len(images)} series found and the segmentation references none of them; "
            f"choose one with --series-uid: {listing}", path)
    return images[0]


def reference_stack(series: SourceSeries) -> tuple[SourceSeries, SliceGeometry]:
    """The series' image slices sorted along the normal, and their exact geometry.

    Localizers and slices of another orientation, matrix or spacing are left out,
    as :func:`.volume.read_series_volume` does, but no pixel data is read.

    Raises
    ------
    SeriesError
        No cross-sectional slices, or two at one position.
    """
    from .volume import image_stack

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


def merge_segments(segments: Sequence[Segment]) -> Segment:
    """One segment that is the union of ``segments`` (all from one file, one grid).

    Fractions are combined by their maximum, so the merged surface follows each
    part's own surface where they do not touch.
    """
    first = segments[0]
    if len(segments) == 1:
        return first
    for other in segments[1:]:
        if other.data.shape != first.data.shape:
            raise SegmentationError("segments on different grids cannot be merged", first.path)
    volume = first.volume.copy()
    for other in segments[1:]:
        np.maximum(volume, other.volume, out=volume)
    return replace(
        first,
        number=first.number,
        name=" + ".join(s.name for s in segments),
        data=volume,
        label_value=None,
        scale=1.0,
        description=None,
    )


# --- models ----------------------------------------------------------------------


def file_name_for(segment: Segment, merged: bool = False) -> str:
    """``<number>_<name>.dcm`` with the name reduced to safe characters."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", segment.name).strip("._-")[:64] or "segment"
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
) -> list[SegmentModel]:
    """Mesh each segment (or their union) and wrap it as Encapsulated STL.

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
    smoothing, decimate, progress:
        Passed to :func:`.surface.extract_surface`; ``smoothing`` defaults to
        :data:`.surface.DEFAULT_SMOOTHING` (windowed sinc, which neither shrinks
        nor shifts the surface); ``None`` or 0 turns it off.

    Raises
    ------
    SegmentationError
        An empty segment that may not be skipped, or nothing left to export.
    """
    metadata = metadata or ModelMetadata()
    segments = list(segments)
    if not segments:
        raise SegmentationError("no segments to export")
    empty = [s for s in segments if s.is_empty]
    if empty and (not skip_empty or len(empty) == len(segments)):
        names = ", ".join(f"'{s.title}'" for s in empty)
        raise SegmentationError(f"segment(s) {names} are empty: no voxel inside", segments[0].path)
    for segment in empty:
        if notice is not None:
            notice(f"skipped empty segment '{segment.title}'")
    segments = [s for s in segments if not s.is_empty]
    groups = [merge_segments(segments)] if merge else segments
    group_uid = metadata.model_group_uid or hd.UID()
    series_uid = metadata.series_instance_uid or hd.UID()
    models = []
    for number, segment in enumerate(groups, start=metadata.instance_number):
        part = segment.cropped(margin=1)
        points, faces = extract_surface_mesh(
            part.volume, part.geometry, part.level,
            smoothing=smoothing, decimate=decimate, progress=progress,
        )
        if len(faces) == 0:
            raise SegmentationError(f"segment '{segment.title}' gave no surface", segment.path)
        description = segment.name if not segment.description else f"{segment.name} ({segment.description})"
        if metadata.content_description:
            description = f"{metadata.content_description}: {description}"
        parameters = {
            "input": segment.path.name if segment.path else "segmentation",
            "segment": segment.title,
            "iso-level": f"{segment.level:g}",
        }
        parameters["smoothing"] = f"{smoothing or 0:g}"
        if decimate:
            parameters["decimate"] = str(decimate)
        dataset = encapsulate_stl(
            binary_stl_from_mesh(points, faces),
            source,
            metadata.replace(
                content_description=description[:1024],
                color=segment.color if segment.color is not None else metadata.color,
                model_group_uid=group_uid,
                series_instance_uid=series_uid,
                instance_number=number,
            ),
            algorithm_parameters=parameters,
            algorithm_family=codes.ALGORITHM_FAMILY_MANUAL,
            path=segment.path,
        )
        models.append(SegmentModel(segment, dataset, file_name_for(segment, merge), len(faces)))
    return models
