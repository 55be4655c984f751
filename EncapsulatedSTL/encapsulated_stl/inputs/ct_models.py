"""CT (or MR) to model: the iso-surface of a series' grey values at a threshold, in the
exact geometry of every slice, wrapped as Encapsulated STL linked to every instance.

The pipeline behind ``from-ct``, the demo and :func:`encapsulated_stl.from_ct`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SeriesError
from ..iod import codes
from ..iod.encapsulate import ModelMetadata, NewStudy, encapsulate_stl
from ..iod.values import fitted
from ..obj.encapsulate import encapsulate_obj, segments_obj
from ..mesh.surface import DEFAULT_SMOOTHING, check_decimate, check_smoothing, extract_surface_mesh
from ..progress import Progress, task
from ..series.source_series import SourceSeries, series_numbers
from ..series.volume import SeriesVolume, read_series_volume
from ..stl.format import binary_stl_from_mesh


def describe_level(level, modality: str) -> str:
    """A threshold in words: ``300 HU``, ``300 to 2000 HU`` (no unit for other modalities)."""
    unit = " HU" if modality == "CT" else ""
    if isinstance(level, tuple):
        return f"{level[0]:g} to {level[1]:g}{unit}"
    return f"{level:g}{unit}"


@dataclass
class CtModel:
    """What :func:`ct_model` made: the object, its triangle count and the series used
    (``path``: where the command line saved it)."""

    dataset: object
    triangle_count: int
    series: SeriesVolume
    path: Path | None = None
    material_libraries: list = field(default_factory=list)
    """With ``file_format="obj"``: the Encapsulated MTL object :attr:`dataset` references."""


def ct_model(
    source,
    level,
    *,
    series_uid: str | None = None,
    smoothing: float | None = DEFAULT_SMOOTHING,
    decimate: int | None = None,
    largest_component: bool = False,
    metadata: ModelMetadata | None = None,
    progress: Progress | None = None,
    keep_voxels: bool = False,
    notice=None,
    patient_id: str | None = None,
    check_source: Callable[[SourceSeries, set[int]], set[int]] | None = None,
    file_format: str = "stl",
) -> CtModel:
    """Mesh one series at ``level`` and wrap the surface as Encapsulated STL.

    Parameters
    ----------
    source:
        Directory or files of the series (see :func:`~encapsulated_stl.series.volume.read_series_volume`).
    level:
        Iso value or ``(low, high)`` band in rescaled units (HU for CT).
    metadata:
        Units, description and the rest; the STL is converted from mm to
        ``metadata.units``.
    keep_voxels:
        Keep the voxel array in the result (by default it is released as soon as
        the surface is extracted, to halve peak memory).
    notice:
        Told what the model leaves out rather than invent (see :func:`~encapsulated_stl.iod.encapsulate.encapsulate_stl`).
    patient_id:
        Patient ID for a series that has none (see :func:`~encapsulated_stl.iod.encapsulate.encapsulate_stl`).
    check_source:
        Called with the series and the Series Numbers of the study's series in sight,
        once its headers are read and before any meshing: raises to stop (an output
        that is one of its files, a Series Number the user gave that one of them has),
        returns more numbers to avoid (earlier models beside the output).
    file_format:
        ``stl``, or ``obj``: the surface as the one group of an Encapsulated OBJ, its
        colour (``metadata.color``, if given) in the Encapsulated MTL it references
        (:attr:`CtModel.material_libraries`).

    Raises
    ------
    EncapsulatedSTLError
        Unusable series, or a level no voxel reaches.
    """
    metadata = metadata or ModelMetadata()
    if file_format not in ("stl", "obj"):
        raise SeriesError(f"unknown model format {file_format!r} (stl or obj)")
    check_smoothing(smoothing)  # before the series is read
    check_decimate(decimate)
    # read with a border so the volume itself becomes the field to contour
    series = read_series_volume(source, series_uid, progress=progress, border=1)
    seen = series.source.study_series_numbers | series_numbers(series.source.datasets[:1])
    used = seen | (check_source(series.source, seen) if check_source is not None else set())
    label = series.source.files[0].parent
    low_value, high_value = series.value_range

    def release_voxels():
        series.voxels = None  # the only other reference: frees the volume before meshing

    points, faces = extract_surface_mesh(
        series.voxels, series.geometry, level, smoothing=smoothing or None,
        decimate=decimate, largest_component=largest_component, progress=progress,
        release=None if keep_voxels else release_voxels, overwrite_border=True, path=label,
    )
    if len(faces) == 0:
        raise SeriesError(
            f"no surface at {describe_level(level, series.source.modality)}: the series' values "
            f"range from {low_value:g} to {high_value:g}",
            label,
        )
    scale = codes.UNIT_MILLIMETRES.get(metadata.units)
    if scale is None:
        codes.units_key(metadata.units)  # raises the standard "unknown units" error
    with task(progress, "Wrapping", 2) as writing:
        if scale != 1.0:
            points /= scale
        triangle_count = len(faces)
        level_text = describe_level(level, series.source.modality)
        if file_format == "obj":
            document, libraries = segments_obj(
                [(f"Iso-surface {level_text}", metadata.color, metadata.opacity, points[faces])], ISO_SURFACE_LIBRARY)
        else:
            document, libraries = binary_stl_from_mesh(points, faces), None
        del points, faces  # the document holds the mesh now; keep peak memory down
        writing.advance()
        parameters = {
            "threshold": describe_level(level, series.source.modality),
            "smoothing": f"{smoothing or 0:g} (windowed sinc)",
            "decimation target": str(decimate) if decimate else "none",
            "largest component": "yes" if largest_component else "no",
            "geometry": "exact per-slice ImagePositionPatient, not resampled",
        }
        if metadata.content_description is None:
            metadata = metadata.replace(content_description=fitted(
                f"Iso-surface at {level_text} "
                f"of {series.source.modality or 'image'} series '{series.source.description}'",
                "ContentDescription"))
        arguments = dict(algorithm_parameters=parameters, algorithm_family=codes.ALGORITHM_FAMILY_THRESHOLD,
                         path=label, used_series_numbers=used, notice=notice)
        if libraries is None:
            dataset, others = encapsulate_stl(
                document, series.source, metadata, NewStudy(patient_id=patient_id),
                check_values=False,  # binary_stl_from_mesh refused non-finite points already
                **arguments), []
        else:
            dataset, *others = encapsulate_obj(document, [(libraries, ISO_SURFACE_LIBRARY)], series.source,
                                               metadata, NewStudy(patient_id=patient_id), **arguments)
        del document
        writing.advance()
    return CtModel(dataset, triangle_count, series, material_libraries=others)


#: The ``mtllib`` name of the material library of an iso-surface written as OBJ.
ISO_SURFACE_LIBRARY = "iso-surface.mtl"


