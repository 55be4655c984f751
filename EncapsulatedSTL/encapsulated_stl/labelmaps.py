"""Segments from NIfTI and NRRD label maps, including Slicer ``.seg.nrrd``.

Both formats put the voxel grid in patient space with one 4 x 4 matrix, which is
turned into an :class:`AffineGeometry` from voxel index ``(i, j, k)`` to LPS mm:

- NIfTI is RAS: the matrix is the one nibabel's ``get_best_affine`` chooses (the
  sform when ``sform_code > 0``, else the qform when ``qform_code > 0``, else
  pixdim scaling alone), then x and y are negated for LPS.  Tools that take
  neither matrix (only the voxel sizes) misplace and misorient oblique data.
- NRRD states its ``space`` (left-posterior-superior, right-anterior-superior or
  left-anterior-superior) with ``space directions`` and ``space origin``.

A label map gives one segment per non-zero value.  A map with a single value
(a binary mask) is named after its file.  A Slicer ``.seg.nrrd`` gives its
segments with their names, colours, label values and layers from the
``Segment<N>_*`` header keys.  Non-integer values within 0..1 are read as one
fractional segment.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .segments import Segment, SegmentationError
from .slice_geometry import AffineGeometry

#: Sign flips from a NRRD ``space`` to LPS.
_NRRD_SPACES = {
    "left-posterior-superior": (1.0, 1.0, 1.0),
    "lps": (1.0, 1.0, 1.0),
    "right-anterior-superior": (-1.0, -1.0, 1.0),
    "ras": (-1.0, -1.0, 1.0),
    "left-anterior-superior": (1.0, -1.0, 1.0),
    "las": (1.0, -1.0, 1.0),
}

_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".nhdr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _label_segments(data: np.ndarray, geometry: AffineGeometry, path: Path) -> list[Segment]:
    """Segments of a ``[k, j, i]`` label map, binary mask or fraction map."""
    if data.dtype.kind == "b":
        data = data.view(np.uint8)
    if data.dtype.kind == "f":
        finite = data[np.isfinite(data)]
        if finite.size != data.size:
            raise SegmentationError("the label map contains NaN or infinite values", path)
        if not np.array_equal(finite, np.round(finite)):
            if finite.min() < 0.0 or finite.max() > 1.0:
                raise SegmentationError(
                    "not a label map: values are neither whole numbers nor fractions in 0..1", path)
            return [Segment(1, _stem(path), data.astype(np.float32), geometry, path=path)]
    elif data.dtype.kind not in "iu":
        raise SegmentationError(f"not a label map: voxel type {data.dtype}", path)
    values = np.unique(data)
    values = values[values != 0]
    if values.size and values.min() < 0:
        raise SegmentationError("negative label values; a label map holds 0 and segment numbers", path)
    if values.size == 1:
        return [Segment(int(values[0]), _stem(path), data, geometry, label_value=values[0].item(), path=path)]
    return [Segment(int(v), f"Label {int(v)}", data, geometry, label_value=v.item(), path=path)
            for v in values]


# --- NIfTI ------------------------------------------------------------------------


def nifti_lps_affine(header) -> np.ndarray:
    """4 x 4 voxel index ``(i, j, k)`` -> LPS mm matrix of a NIfTI header.

    The RAS matrix is the sform when ``sform_code > 0``, else the qform when
    ``qform_code > 0``, else voxel sizes alone (nibabel's ``get_best_affine``).
    """
    return _LPS_FROM_RAS @ np.asarray(header.get_best_affine(), dtype=np.float64)


def read_nifti_segments(path: str | os.PathLike) -> list[Segment]:
    """Segments of a NIfTI-1 / NIfTI-2 label map or binary mask.

    Raises
    ------
    SegmentationError
        Unreadable file, not 3D, or not a label map.
    """
    import nibabel as nib

    path = Path(path)
    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except Exception as error:  # nibabel raises many types for broken files
        raise SegmentationError(f"cannot read as NIfTI: {error}", path) from None
    if not hasattr(image.header, "get_best_affine"):
        raise SegmentationError("not a NIfTI image", path)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise SegmentationError(f"expected a 3D label map, found shape {data.shape}", path)
    geometry = AffineGeometry(nifti_lps_affine(image.header))
    if abs(np.linalg.det(geometry.matrix[:3, :3])) < 1e-12:
        raise SegmentationError("the orientation matrix is singular", path)
    return _label_segments(data.transpose(2, 1, 0), geometry, path)


# --- NRRD and Slicer .seg.nrrd ------------------------------------------------------


def _nrrd_geometry(header: dict, spatial_axes: list[int], path: Path) -> AffineGeometry:
    space = str(header.get("space", "")).strip().lower()
    if space not in _NRRD_SPACES:
        raise SegmentationError(
            f"NRRD space '{header.get('space', 'not given')}' is not a patient space; "
            "expected left-posterior-superior, right-anterior-superior or left-anterior-superior",
            path)
    directions = np.asarray(header["space directions"], dtype=np.float64)[spatial_axes]
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    if directions.shape != (3, 3) or origin.shape != (3,) or not np.isfinite(origin).all():
        raise SegmentationError("malformed 'space directions' or 'space origin'", path)
    flip = np.asarray(_NRRD_SPACES[space])
    matrix = np.eye(4)
    matrix[:3, :3] = (directions * flip).T  # column a: LPS step of index axis a
    matrix[:3, 3] = origin * flip
    if abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
        raise SegmentationError("the 'space directions' matrix is singular", path)
    return AffineGeometry(matrix)


def _slicer_color(text: str | None) -> tuple[float, float, float] | None:
    try:
        rgb = tuple(float(v) for v in str(text).split())
    except ValueError:
        return None
    return rgb if len(rgb) == 3 and all(0.0 <= v <= 1.0 for v in rgb) else None


def read_nrrd_segments(path: str | os.PathLike) -> list[Segment]:
    """Segments of a NRRD label map or a Slicer ``.seg.nrrd`` segmentation.

    In a ``.seg.nrrd`` segment ``N`` (0-based) is the voxels of layer
    ``Segment<N>_Layer`` equal to ``Segment<N>_LabelValue`` (older files: layer
    ``N``, value 1); its number here is ``N + 1``.

    Raises
    ------
    SegmentationError
        Unreadable or malformed file, no patient space, or not a label map.
    """
    import nrrd

    path = Path(path)
    try:
        data, header = nrrd.read(str(path), index_order="F")
    except Exception as error:  # pynrrd raises NRRDError, ValueError, OSError...
        raise SegmentationError(f"cannot read as NRRD: {error}", path) from None
    if "space directions" not in header:
        raise SegmentationError("no 'space directions': the grid has no patient geometry", path)
    directions = np.asarray(header["space directions"], dtype=np.float64)
    spatial = [a for a in range(directions.shape[0]) if np.isfinite(directions[a]).all()]
    others = [a for a in range(data.ndim) if a not in spatial]
    if len(spatial) != 3 or len(others) > 1:
        raise SegmentationError(f"expected a 3D volume (plus at most one layer axis), found shape {data.shape}", path)
    geometry = _nrrd_geometry(header, spatial, path)
    # [layer, k, j, i]
    layers = np.transpose(data, others + spatial[::-1]) if others else data.transpose(2, 1, 0)[None]
    names = sorted(
        (int(key[len("Segment"):-len("_Name")]), key) for key in header
        if key.startswith("Segment") and key.endswith("_Name") and key[7:-5].isdigit()
    )
    if not names:
        if layers.shape[0] != 1:
            raise SegmentationError("a multi-layer NRRD without Segment<N>_Name keys", path)
        return _label_segments(layers[0], geometry, path)
    segments = []
    for index, key in names:
        prefix = f"Segment{index}_"
        try:
            layer = int(header.get(prefix + "Layer", index if layers.shape[0] > 1 else 0))
            value = int(header.get(prefix + "LabelValue", 1))
        except ValueError:
            raise SegmentationError(f"malformed {prefix}Layer or {prefix}LabelValue", path) from None
        if not 0 <= layer < layers.shape[0]:
            raise SegmentationError(f"{prefix}Layer {layer} is not a layer of the file", path)
        segments.append(Segment(
            number=index + 1,
            name=str(header[key]).strip() or f"Segment {index + 1}",
            data=layers[layer],
            geometry=geometry,
            label_value=value,
            color=_slicer_color(header.get(prefix + "Color")),
            path=path,
        ))
    return segments
