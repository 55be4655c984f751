"""The package's public functions: read any producer's model, wrap an STL, mesh a CT or a
segmentation, save, compare two models.  ``import encapsulated_stl`` offers them at the top level.

Coordinates are millimetres in the patient coordinate system of DICOM (LPS: x to the
patient's left, y to posterior, z to superior), in the Frame of Reference of the source
images, unless an object says other units.  Every function raises only the package's
own errors (:mod:`.errors`), each naming the file and the problem in one line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import EncapsulatedSTLError


def read(path: str | os.PathLike):
    """Read an Encapsulated STL object from any producer.

    Parameters
    ----------
    path : str or os.PathLike
        The DICOM file.

    Returns
    -------
    encapsulated_stl.iod.model.EncapsulatedModel
        ``.triangles_mm()`` gives the ``(n, 3, 3)`` vertices in LPS millimetres (scaled
        from the units the object declares); ``.units``, ``.frame_of_reference_uid``,
        ``.source_series``, ``.notes`` (what was read leniently) and the rest describe it.

    Raises
    ------
    NotEncapsulatedSTLError
        Missing, special, truncated or not an Encapsulated STL object.
    StlFormatError
        The STL inside is malformed.
    """
    from .iod.model import read_encapsulated_model

    return read_encapsulated_model(path)


def _split_metadata(metadata: dict):
    """(ModelMetadata, NewStudy) from keyword arguments named as their fields."""
    from .iod.encapsulate import ModelMetadata, NewStudy

    model_fields = {f.name for f in dataclasses.fields(ModelMetadata)}
    study_fields = {f.name for f in dataclasses.fields(NewStudy)}
    unknown = sorted(set(metadata) - model_fields - study_fields)
    if unknown:
        raise EncapsulatedSTLError(
            f"unknown argument(s) {', '.join(unknown)}; the model takes "
            f"{', '.join(sorted(model_fields | study_fields))}")
    return (ModelMetadata(**{k: v for k, v in metadata.items() if k in model_fields}),
            NewStudy(**{k: v for k, v in metadata.items() if k in study_fields}))


def _source(reference, series_uid: str | None):
    from .series.source_series import SourceSeries, reference_series

    if reference is None or isinstance(reference, SourceSeries):
        return reference
    return reference_series(reference, series_uid)


def wrap(stl, reference=None, *, series_uid: str | None = None, **metadata):
    """Wrap an STL model as an Encapsulated STL object.

    Parameters
    ----------
    stl : str, os.PathLike, bytes or numpy.ndarray
        An STL file (binary, stored byte for byte; ASCII, converted to binary), binary
        STL bytes, or ``(n, 3, 3)`` triangles.  Coordinates in ``units`` (mm by
        default), patient LPS, in the source series' Frame of Reference.
    reference : str, os.PathLike or encapsulated_stl.series.source_series.SourceSeries, optional
        The source image series: a directory (searched recursively), one file of the
        series, or series already scanned.  The object joins its patient, study and
        Frame of Reference and references every instance.  Without one, give at least
        ``patient_id``: the object starts a new study.
    series_uid : str, optional
        Which series, when ``reference`` holds several.
    **metadata
        Fields of :class:`~encapsulated_stl.iod.encapsulate.ModelMetadata` (``units``,
        ``content_description``, ``usage``, ``laterality``, ``series_number``...) and,
        without a reference, of :class:`~encapsulated_stl.iod.encapsulate.NewStudy`
        (``patient_name``, ``patient_id``...).

    Returns
    -------
    encapsulated_stl.iod.sop.EncapsulatedSTL
        The object (a pydicom Dataset); write it with :func:`save`.  Its Encapsulated
        Document refers to the STL bytes without copying them (under pydicom 3 a
        stream); ``encapsulated_stl.iod.document.encapsulated_stl_bytes(dataset)``
        gives them.
    """
    from .iod.encapsulate import encapsulate_stl

    model, study = _split_metadata(metadata)
    stl, path = _stl_bytes(stl)
    return encapsulate_stl(stl, _source(reference, series_uid), model, study, path=path)


def wrap_obj(obj, reference=None, *, series_uid: str | None = None, **metadata):
    """Wrap an OBJ file and the MTL files its ``mtllib`` lines name (read from beside
    it) as an Encapsulated OBJ object and the Encapsulated MTL objects it references,
    all stored byte for byte, in one series.

    Parameters
    ----------
    obj : str or os.PathLike
        The OBJ file; coordinates in ``units`` (mm by default), patient LPS.
    reference, series_uid, **metadata
        As for :func:`wrap`.

    Returns
    -------
    list of pydicom.dataset.Dataset
        The :class:`~encapsulated_stl.obj.sop.EncapsulatedOBJ` object, then its
        :class:`~encapsulated_stl.obj.sop.EncapsulatedMTL` objects.

    Raises
    ------
    ObjFormatError
        A malformed OBJ or MTL, a missing MTL, or one with texture maps.
    """
    from .obj.encapsulate import encapsulate_obj, read_obj_files

    model, study = _split_metadata(metadata)
    path = Path(obj)
    document, _model, libraries = read_obj_files(path)
    return encapsulate_obj(document, [(mtl, name) for mtl, name, _path in libraries],
                           _source(reference, series_uid), model, study, path=path)


def _stl_bytes(stl) -> tuple[bytes, Path | None]:
    """(binary STL bytes, the file's path or None) of what :func:`wrap` takes."""
    from .stl.format import binary_stl_bytes, binary_stl_for_encapsulation, read_stl_file

    if isinstance(stl, (str, os.PathLike)):
        path = Path(stl)
        return binary_stl_for_encapsulation(read_stl_file(path), path)[0], path
    if isinstance(stl, np.ndarray):
        try:
            return binary_stl_bytes(stl), None
        except ValueError as error:
            raise EncapsulatedSTLError(f"triangles: {error}") from None
    return stl, None


def revise(stl, earlier, *, purpose: str = "edited", **metadata):
    """Wrap an STL as a new version of earlier Encapsulated STL objects.

    Parameters
    ----------
    stl : str, os.PathLike, bytes or numpy.ndarray
        As for :func:`wrap`: coordinates in patient LPS of the earlier models' Frame of
        Reference, in ``units`` (by default the earlier model's, else mm).
    earlier : str, os.PathLike, EncapsulatedModel, or a sequence of them
        The object(s) this model is a new version of: one patient, study and Frame
        of Reference.
    purpose : {"edited", "component"}
        CID 7062: the earlier model changed (129010 "Edited Model"), or the earlier
        models are parts of this one (129011 "Component Model").
    **metadata
        Fields of :class:`~encapsulated_stl.iod.encapsulate.ModelMetadata`; those not
        given (``units`` included) are the first earlier model's where it states
        them (units and usage; for an edit also laterality, the descriptions, colour
        and opacity).  ``patient_id`` only for earlier objects that have none.

    Returns
    -------
    encapsulated_stl.iod.sop.EncapsulatedSTL
        A new instance in a new series of the earlier models' study and Frame of
        Reference, naming them in Predecessor Documents Sequence (0040,A360) and
        referencing their source instances.
    """
    from .iod.model import EncapsulatedModel
    from .iod.versions import new_version

    patient_id = metadata.pop("patient_id", None)
    given, study = _split_metadata({"units": None, **metadata})
    kept = sorted(name for name, value in study.__dict__.items() if value is not None)
    if kept:
        raise EncapsulatedSTLError(
            f"a new version keeps the earlier models' patient and study; {', '.join(kept)} cannot be given")
    if isinstance(earlier, (str, os.PathLike, EncapsulatedModel)):
        earlier = [earlier]
    earlier = [e if isinstance(e, EncapsulatedModel) else read(e) for e in earlier]
    if not earlier:
        raise EncapsulatedSTLError("no earlier model to revise")
    data, path = _stl_bytes(stl)
    return new_version(data, earlier, purpose, given, patient_id, path=path)


def from_ct(series, threshold, *, series_uid: str | None = None, smoothing: float | None = None,
            decimate: int | None = None, largest_component: bool = False, file_format: str = "stl",
            **metadata):
    """Mesh a CT (or MR) series at a threshold, in the exact geometry of every slice.

    Parameters
    ----------
    series : str, os.PathLike or sequence of them
        The series' directory or files.
    threshold : float or (float, float)
        Iso value, or a ``(low, high)`` band, in rescaled units (HU for CT).
    series_uid : str, optional
        Which series, when the directory holds several.
    smoothing : float, optional
        Windowed-sinc smoothing factor 0..1 (default the command line's; 0 for the
        exact iso-surface).
    decimate : int, optional
        Reduce the mesh to about this many triangles.
    largest_component : bool
        Keep only the largest connected surface.
    file_format : str
        ``stl``, or ``obj``: an Encapsulated OBJ with its Encapsulated MTL.
    **metadata
        As for :func:`wrap`.

    Returns
    -------
    encapsulated_stl.iod.sop.EncapsulatedSTL
        The model in LPS, in ``units`` (mm by default), referencing every instance; with
        ``file_format="obj"`` a list: the Encapsulated OBJ object, then its MTL object.
    """
    from .inputs.ct_models import ct_model
    from .mesh.surface import DEFAULT_SMOOTHING

    model, study = _split_metadata(metadata)
    made = ct_model(series, threshold, series_uid=series_uid,
                    smoothing=DEFAULT_SMOOTHING if smoothing is None else smoothing,
                    decimate=decimate, largest_component=largest_component, metadata=model,
                    patient_id=study.patient_id, file_format=file_format)
    return [made.dataset, *made.material_libraries] if file_format == "obj" else made.dataset


def from_segmentation(path: str | os.PathLike, reference=None, *, series_uid: str | None = None,
                      segments: Sequence[str] | None = None, merge: bool = False,
                      smoothing: float | None = None, decimate: int | None = None, file_format: str = "stl",
                      **metadata):
    """One model per segment of a DICOM SEG, RTSTRUCT, NIfTI or NRRD segmentation.

    Parameters
    ----------
    path : str or os.PathLike
        The segmentation file.
    reference : str or os.PathLike, optional
        The source image series (directory or one file); by default the series the
        SEG or RTSTRUCT references, found beside it.
    series_uid : str, optional
        Which series, when the reference holds several.
    segments : sequence of str, optional
        Segment numbers or names (default: every segment that is not empty).
    merge : bool
        One model of all chosen segments together.
    smoothing, decimate
        As for :func:`from_ct`.
    file_format : str
        ``stl``: one Encapsulated STL per segment; ``obj``: one Encapsulated OBJ with a
        group per segment, then the Encapsulated MTL giving each its colour.
    **metadata
        As for :func:`wrap`; ``content_description`` is prefixed to each segment's name.

    Returns
    -------
    list of encapsulated_stl.iod.sop.EncapsulatedSTL
        One object per segment (one series, one Model Group UID), the surface in
        patient LPS millimetres (or ``units``), placed by the segmentation's own geometry
        (per-frame positions for a SEG, contour points for an RTSTRUCT, sform or qform
        for NIfTI, space directions for NRRD).
    """
    from .inputs.segments import segmentation_models
    from .mesh.surface import DEFAULT_SMOOTHING

    model, study = _split_metadata(metadata)
    made, _stack, _series = segmentation_models(
        path, reference, series_uid=series_uid, segments=segments, merge=merge,
        smoothing=DEFAULT_SMOOTHING if smoothing is None else smoothing, decimate=decimate,
        metadata=model, patient_id=study.patient_id, file_format=file_format)
    return [m.dataset for m in made]


def compare(planned, actual, *, align: str = "none", units: str | None = None):
    """Surface distances between a planned model and the actual one (a print's scan).

    Parameters
    ----------
    planned, actual : str, os.PathLike or numpy.ndarray
        Encapsulated STL objects of any producer or STL files, or ``(n, 3, 3)``
        triangles in mm.  Files are converted to mm from the units an object declares,
        else ``units``.  Coordinates are compared as they are (patient LPS for models
        made here) unless ``align="rigid"``.
    align : {"none", "rigid"}
        ``"rigid"`` first moves ``actual`` onto ``planned`` by a rotation and a
        translation (ICP; no scaling, so a print scaled wrong shows as distance).
    units : {"m", "cm", "mm", "um"}, optional
        Units of an STL file, or of an object that declares none (default mm).

    Returns
    -------
    encapsulated_stl.mesh.compare.SurfaceComparison
        ``.symmetric``, ``.actual_to_planned`` and ``.planned_to_actual`` hold the
        area-weighted mean, RMS, 95th percentile and maximum of the point-to-surface
        distances in mm; ``.transform`` the 4 x 4 matrix applied to ``actual``
        (``.rotation_degrees``, ``.rotation_axis``, ``.translation_mm`` in PLANNED's
        coordinates, LPS for a patient model); ``.actual_vertex_distances`` the
        distance (mm) of each of ``.actual_points`` to ``planned``.

    Raises
    ------
    EncapsulatedSTLError
        A file that cannot be read, a mesh with no triangles, no area or a non-finite
        coordinate; each names the file.
    """
    from .mesh.compare import compare_surfaces

    meshes, names = [], []
    for given, default_name in ((planned, "planned"), (actual, "actual")):
        if isinstance(given, (str, os.PathLike)):
            from .iod.model import model_triangles_mm

            meshes.append(model_triangles_mm(given, units)[0])
            names.append(os.fspath(given))
        else:
            meshes.append(given)
            names.append(default_name)
    return compare_surfaces(meshes[0], meshes[1], align, names=(names[0], names[1]))


def save(dataset, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write an object to ``path`` atomically (a whole file or none).

    Parameters
    ----------
    dataset : pydicom.dataset.Dataset
        What :func:`wrap`, :func:`from_ct` or :func:`from_segmentation` made.
    path : str or os.PathLike
        The new file; a symlink's target is written.  A directory, a device or an
        existing file (without ``force``) is refused.
    force : bool
        Replace an existing file (keeping its permissions).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    from .files import check_output_path
    from .iod.encapsulate import save_dataset

    return save_dataset(dataset, check_output_path(path, force), force=force)


def preview(model, path: str | os.PathLike | None = None, *, size: int = 512, view: str = "anterior",
            units: str | None = None, force: bool = False) -> np.ndarray:
    """Draw a model offscreen (no display or GPU needed), as ``encapsulated-stl preview``.

    Parameters
    ----------
    model : str, os.PathLike, EncapsulatedModel or numpy.ndarray
        An Encapsulated STL object of any producer or an STL file, a model :func:`read`
        returned, or ``(n, 3, 3)`` triangles in patient LPS.
    path : str or os.PathLike, optional
        Also write the picture there as a PNG (atomically; an existing file only with
        ``force``).
    size : int
        Width and height in pixels, 16 to 8192.
    view : str
        ``anterior`` (from the patient's front: the patient's right on the picture's
        left, head up) or ``left`` (from the patient's left side).
    units : str, optional
        Units of an STL file or of an object that declares none (mm by default).  The
        picture is fitted to the model, so units change its scale, never its pixels.

    Returns
    -------
    numpy.ndarray
        ``(size, size, 3)`` uint8 RGB, first row at the top; the same model gives the
        same pixels.

    Raises
    ------
    EncapsulatedSTLError
        An unreadable model, a bad size or view, or a machine where VTK cannot render
        (``RenderingUnavailable``, naming what to install).
    """
    from .files import write_atomically
    from .iod.model import EncapsulatedModel, model_triangles_mm
    from .mesh.render import Layer, png_bytes, render

    if isinstance(model, EncapsulatedModel):
        triangles = model.triangles_mm(assume_units=units or "mm")
    elif isinstance(model, np.ndarray):
        triangles = model
        if triangles.ndim != 3 or triangles.shape[1:] != (3, 3) or not len(triangles):
            raise EncapsulatedSTLError(f"triangles must be a non-empty (n, 3, 3) array, not {triangles.shape}")
    else:
        triangles = model_triangles_mm(model, units)[0]
    picture = render([Layer(triangles)], size, view=view)
    if path is not None:
        inputs = [model] if isinstance(model, (str, os.PathLike)) else []
        write_atomically(path, lambda stream: stream.write(png_bytes(picture)), force=force, inputs=inputs)
    return picture
