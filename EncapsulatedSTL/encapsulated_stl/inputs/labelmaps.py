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

What is refused rather than guessed (:class:`SegmentationError` naming the file
and the field): a matrix or origin that is not finite, voxel axes of zero length
or (nearly) in one plane, a grid reaching beyond any patient
(:data:`~encapsulated_stl.mesh.surface.MAX_COORDINATE_MM`); NIfTI voxel sizes (``pixdim[1..3]``) that
are not positive finite numbers, although nibabel would silently take 1 mm for a
zero (the NIfTI-1 standard requires them positive); unknown sform or qform codes;
a map of more than :data:`.segment.MAX_SEGMENTS` labels; data larger than the
memory available; a NRRD whose data is split over several files.
"""

from __future__ import annotations

import bz2
import contextlib
import io
import os
import zlib
from pathlib import Path

import numpy as np

from ..files import check_input, check_memory, open_input
from ..mesh.surface import MAX_COORDINATE_MM
from ..series.slice_geometry import AffineGeometry
from .segment import MAX_SEGMENTS, Segment, SegmentationError, one_line, quiet_reading

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

#: Voxel axes are refused as degenerate when the volume of the cell they span is
#: less than this fraction of the product of their lengths (sine of the smallest
#: angle between an axis and the plane of the other two, about 0.06 degrees).
_MIN_AXIS_INDEPENDENCE = 1e-3

#: Bytes per value of each NRRD ``type`` (all the spellings the NRRD format allows).
_NRRD_TYPE_SIZES = {
    **dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"), 1),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t",
                     "ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), 2),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32",
                     "uint32_t", "float"), 4),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long",
                     "signed long long int", "int64", "int64_t", "ulonglong", "unsigned long long",
                     "unsigned long long int", "uint64", "uint64_t", "double"), 8),
}


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".nhdr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def checked_geometry(matrix: np.ndarray, shape_ijk, path: Path, what: str) -> AffineGeometry:
    """The voxel index -> LPS geometry of ``matrix``, if it is a usable grid.

    Raises
    ------
    SegmentationError
        Non-finite entries, a voxel axis of zero length, axes (nearly) in one
        plane, or a grid reaching farther than :data:`~encapsulated_stl.mesh.surface.MAX_COORDINATE_MM`.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix[:3]).all():
        raise SegmentationError(f"the {what} is not finite (NaN or infinite values)", path)
    largest = float(np.abs(matrix[:3]).max())
    if largest > MAX_COORDINATE_MM:  # checked first: squaring such values overflows
        raise SegmentationError(
            f"the {what} holds {largest:.3g} mm, beyond any patient ({MAX_COORDINATE_MM:.0g} mm)", path)
    axes = matrix[:3, :3]
    lengths = np.linalg.norm(axes, axis=0)
    for axis, length in zip("ijk", lengths):
        if not length > 0.0:
            raise SegmentationError(f"the {what} gives voxel axis {axis} zero length", path)
    independence = abs(np.linalg.det(axes / lengths))
    if not independence >= _MIN_AXIS_INDEPENDENCE:
        raise SegmentationError(
            f"the {what} is degenerate: its voxel axes lie (nearly) in one plane", path)
    corners = np.array([[i, j, k] for i in (0, shape_ijk[0]) for j in (0, shape_ijk[1])
                        for k in (0, shape_ijk[2])], dtype=np.float64)
    reach = float(np.abs(corners @ axes.T + matrix[:3, 3]).max())
    if not reach <= MAX_COORDINATE_MM:
        raise SegmentationError(
            f"the {what} puts the grid {reach:.3g} mm from the origin, beyond any patient "
            f"({MAX_COORDINATE_MM:.0g} mm)", path)
    return AffineGeometry(matrix)


def _label_boxes(data: np.ndarray, values: np.ndarray, path: Path):
    """``[k, j, i]`` bounding slices of each of ``values`` (sorted, positive) in ``data``.

    One pass over the map for all labels, so the work per label afterwards is
    bounded by its own box.
    """
    from scipy import ndimage

    if values[-1] <= 64 * values.size + 65536:
        boxes = ndimage.find_objects(data, max_label=int(values[-1]))
        return [boxes[int(v) - 1] for v in values]
    # sparse, huge label values: number them 1..n first (0 stays background)
    check_memory(2 * data.size * 8, "numbering the labels", path, SegmentationError)
    compact = np.searchsorted(values, data) + 1
    compact[data == 0] = 0
    return ndimage.find_objects(compact, max_label=values.size)


def _label_segments(data: np.ndarray, geometry: AffineGeometry, path: Path) -> list[Segment]:
    """Segments of a ``[k, j, i]`` label map, binary mask or fraction map."""
    if data.dtype.kind == "b":
        data = data.view(np.uint8)
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            raise SegmentationError("the label map contains NaN or infinite values", path)
        del finite
        if not np.array_equal(data, np.round(data)):
            if data.min() < 0.0 or data.max() > 1.0:
                raise SegmentationError(
                    "not a label map: values are neither whole numbers nor fractions in 0..1", path)
            return [Segment(1, _stem(path), data.astype(np.float32), geometry, path=path)]
        if data.size and (data.min() < 0 or data.max() > np.iinfo(np.int64).max):
            raise SegmentationError("negative label values; a label map holds 0 and segment numbers", path)
        data = data.astype(np.int64 if data.size and data.max() > np.iinfo(np.int32).max else np.int32)
    elif data.dtype.kind not in "iu":
        raise SegmentationError(f"not a label map: voxel type {data.dtype}", path)
    values = np.unique(data)
    if values.size and values[0] < 0:
        raise SegmentationError("negative label values; a label map holds 0 and segment numbers", path)
    values = values[values != 0]
    if values.size > MAX_SEGMENTS:
        raise SegmentationError(
            f"{values.size} distinct labels, more than the {MAX_SEGMENTS} segments one label map "
            "may hold; is this an intensity image (CT, MR) rather than a label map?", path)
    if values.size == 0:
        return []
    boxes = _label_boxes(data, values, path)
    if values.size == 1:
        return [Segment(int(values[0]), _stem(path), data, geometry, label_value=values[0].item(),
                        path=path, box=boxes[0])]
    return [Segment(int(v), f"Label {int(v)}", data, geometry, label_value=v.item(), path=path, box=box)
            for v, box in zip(values, boxes)]


# --- NIfTI ------------------------------------------------------------------------


def nifti_lps_affine(header) -> np.ndarray:
    """4 x 4 voxel index ``(i, j, k)`` -> LPS mm matrix of a NIfTI header.

    The RAS matrix is the sform when ``sform_code > 0``, else the qform when
    ``qform_code > 0``, else voxel sizes alone (nibabel's ``get_best_affine``).
    """
    with quiet_reading():
        return _LPS_FROM_RAS @ np.asarray(header.get_best_affine(), dtype=np.float64)


def _raw_nifti_header(path: Path, header_class):
    """The header as stored: nibabel's loader "fixes" fields (pixdim 0 becomes 1)."""
    from nibabel.openers import ImageOpener

    with ImageOpener(str(path)) as stream:
        return header_class.from_fileobj(stream, check=False)


def _check_nifti_header(header, path: Path) -> str:
    """Which matrix places the voxels ("sform", "qform" or "pixdim"), once the
    fields it needs are checked."""
    from nibabel.nifti1 import xform_codes

    codes = {}
    for name in ("sform_code", "qform_code"):
        code = int(header[name])
        if code not in xform_codes.value_set():
            raise SegmentationError(
                f"{name} {code} is not a NIfTI transform code (0..5); the header is damaged", path)
        codes[name] = code
    pixdim = np.asarray(header["pixdim"], dtype=np.float64)
    for axis in (1, 2, 3):
        size = float(pixdim[axis])
        if not (np.isfinite(size) and size > 0.0):
            raise SegmentationError(
                f"pixdim[{axis}] (voxel size) is {size:g}: it must be a positive number of mm "
                "(NIfTI-1); the header is damaged", path)
    if codes["sform_code"] > 0:
        return "sform"
    if codes["qform_code"] > 0:
        qfac = float(pixdim[0])
        if qfac == 0.0:
            header["pixdim"][0] = 1.0  # "should not occur, we take qfac = 1" (nifti1.h)
        elif qfac not in (-1.0, 1.0):
            raise SegmentationError(f"pixdim[0] (qfac) is {qfac:g}: the qform needs 1 or -1", path)
        quaternion = np.asarray([header[f"quatern_{c}"] for c in "bcd"]
                                + [header[f"qoffset_{c}"] for c in "xyz"], dtype=np.float64)
        if not np.isfinite(quaternion).all():
            raise SegmentationError("the qform (quatern_b/c/d, qoffset_x/y/z) is not finite", path)
        if float(np.sum(quaternion[:3] ** 2)) > 1.0 + 1e-6:
            raise SegmentationError(
                "the qform quaternion (quatern_b/c/d) is longer than 1: not a rotation", path)
        return "qform"
    return "pixdim"


@contextlib.contextmanager
def _nibabel_silenced():
    """nibabel logs the header fields it "fixes" (pixdim 0 becomes 1) to stderr;
    they are checked here instead and refused with one message."""
    from nibabel.imageglobals import logger

    disabled = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = disabled


def read_nifti_segments(path: str | os.PathLike) -> list[Segment]:
    """Segments of a NIfTI-1 / NIfTI-2 label map or binary mask.

    Raises
    ------
    SegmentationError
        Unreadable file, not 3D, not a label map, a damaged or degenerate
        geometry (see the module's notes), or data beyond the available memory.
    """
    import nibabel as nib

    path = Path(path)
    check_input(path, SegmentationError)
    with _nibabel_silenced(), quiet_reading():
        try:
            image = nib.load(str(path))
        except Exception as error:  # nibabel raises many types for broken files
            raise SegmentationError(f"cannot read as NIfTI: {one_line(error)}", path) from None
        if not isinstance(image.header, nib.Nifti1Header):  # NIfTI-2 headers are NIfTI-1 headers too
            raise SegmentationError(f"not a NIfTI image ({type(image).__name__})", path)
        try:
            header = _raw_nifti_header(path, type(image.header))
        except Exception as error:
            raise SegmentationError(f"cannot read the NIfTI header: {one_line(error)}", path) from None
        method = _check_nifti_header(header, path)
        shape = tuple(int(n) for n in image.shape)
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) != 3:
            raise SegmentationError(f"expected a 3D label map, found shape {tuple(image.shape)}", path)
        try:
            matrix = nifti_lps_affine(header)
        except Exception as error:  # a quaternion nibabel cannot turn into a rotation
            raise SegmentationError(f"the {method} cannot be read: {one_line(error)}", path) from None
        geometry = checked_geometry(matrix, shape, path, {"sform": "sform", "qform": "qform",
                                                          "pixdim": "voxel size (pixdim)"}[method])
        stored = np.dtype(image.get_data_dtype())
        scaled = image.dataobj.slope != 1 or image.dataobj.inter != 0
        itemsize = max(stored.itemsize, 8 if scaled else 0)
        # the data, the sorted copy np.unique makes and a box pass's labels
        check_memory(3 * int(np.prod(shape, dtype=np.float64)) * itemsize, "reading the label map",
                     path, SegmentationError)
        try:
            data = np.asanyarray(image.dataobj)
        except Exception as error:
            raise SegmentationError(f"cannot read the NIfTI data: {one_line(error)}", path) from None
    data = data.reshape(shape)
    return _label_segments(data.transpose(2, 1, 0), geometry, path)


# --- NRRD and Slicer .seg.nrrd ------------------------------------------------------


def _nrrd_geometry(header: dict, spatial_axes: list[int], shape_ijk, path: Path) -> AffineGeometry:
    space = str(header.get("space", "")).strip().lower()
    if space not in _NRRD_SPACES:
        raise SegmentationError(
            f"NRRD space '{one_line(header.get('space', 'not given'))[:40]}' is not a patient space; "
            "expected left-posterior-superior, right-anterior-superior or left-anterior-superior",
            path)
    try:
        directions = np.asarray(header["space directions"], dtype=np.float64)[spatial_axes]
        origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    except (TypeError, ValueError, IndexError):
        raise SegmentationError("malformed 'space directions' or 'space origin'", path) from None
    if directions.shape != (3, 3) or origin.shape != (3,):
        raise SegmentationError("malformed 'space directions' or 'space origin': three vectors of "
                                "three numbers and one origin of three expected", path)
    if not np.isfinite(origin).all():
        raise SegmentationError("the 'space origin' is not finite (NaN or infinite values)", path)
    flip = np.asarray(_NRRD_SPACES[space])
    matrix = np.eye(4)
    matrix[:3, :3] = (directions * flip).T  # column a: LPS step of index axis a
    matrix[:3, 3] = origin * flip
    return checked_geometry(matrix, shape_ijk, path, "'space directions' matrix")


def _slicer_color(text: str | None) -> tuple[float, float, float] | None:
    try:
        rgb = tuple(float(v) for v in str(text).split())
    except ValueError:
        return None
    return rgb if len(rgb) == 3 and all(0.0 <= v <= 1.0 for v in rgb) else None


def _header_int(header: dict, names, default: int, path: Path) -> int:
    for name in names:
        if name in header:
            try:
                return int(header[name])
            except (TypeError, ValueError, OverflowError):
                raise SegmentationError(f"NRRD '{name}' is not a whole number", path) from None
    return default


def _nrrd_data_bytes(header: dict, stream, path: Path, expected: int) -> tuple[bytes, str]:
    """The data of a NRRD after its skips, decompressed, no more than its sizes declare.

    pynrrd would read a detached data file by name (a FIFO blocks, /dev/zero never
    ends) and decompress without limit; here both are bounded.  Returns the bytes
    and the encoding they are now in ("raw" or, for text, "ascii").
    """
    name = header.get("data file", header.get("datafile"))
    opened = None
    try:
        if name is not None:
            name = str(name).strip()
            if name.startswith("LIST") or len(name.split()) > 1:
                raise SegmentationError(
                    "the data is split over several files ('data file' LIST or pattern); "
                    "join it into one .nrrd", path)
            data_path = Path(name) if os.path.isabs(name) else path.parent / name
            try:
                opened = stream = open_input(data_path, SegmentationError)
            except SegmentationError as error:  # named from the header that points to it
                raise SegmentationError(f"data file {data_path} {error.reason}", path) from None
        line_skip = _header_int(header, ("line skip", "lineskip"), 0, path)
        byte_skip = _header_int(header, ("byte skip", "byteskip"), 0, path)
        if line_skip < 0 or byte_skip < -1:
            raise SegmentationError("NRRD 'line skip' or 'byte skip' is negative", path)
        for _ in range(line_skip):
            stream.readline()
        encoding = str(header.get("encoding", "raw")).strip().lower()
        if encoding == "raw":
            if byte_skip == -1:
                stream.seek(0, os.SEEK_END)
                if stream.tell() < expected:
                    raise SegmentationError(
                        f"the data is {stream.tell()} bytes, its sizes need {expected}", path)
                stream.seek(-expected, os.SEEK_END)
            else:
                stream.seek(byte_skip, os.SEEK_CUR)
            data = stream.read(expected)
        elif encoding in ("txt", "text", "ascii"):
            return stream.read(), "ascii"
        elif encoding in ("gzip", "gz", "bzip2", "bz2"):
            if byte_skip == -1:
                raise SegmentationError("'byte skip: -1' is for raw data only", path)
            decompress = (zlib.decompressobj(zlib.MAX_WBITS | 32).decompress if encoding in ("gzip", "gz")
                          else bz2.BZ2Decompressor().decompress)
            try:
                data = decompress(stream.read(), byte_skip + expected)[byte_skip:]
            except (OSError, EOFError, ValueError, zlib.error) as error:
                raise SegmentationError(f"cannot decompress the NRRD data: {one_line(error)}", path) from None
        else:
            raise SegmentationError(f"NRRD encoding '{one_line(encoding)[:20]}' is not supported", path)
    finally:
        if opened is not None:
            opened.close()
    if len(data) < expected:
        raise SegmentationError(
            f"the data is truncated: {len(data)} bytes where its sizes need {expected}", path)
    return data, "raw"


def _read_nrrd(path: Path):
    import nrrd

    with open_input(path, SegmentationError) as stream, quiet_reading():
        try:
            header = nrrd.read_header(stream)
        except Exception as error:  # pynrrd raises NRRDError, ValueError, IndexError...
            raise SegmentationError(f"cannot read as NRRD: {one_line(error)}", path) from None
        if "sizes" not in header or "type" not in header:
            raise SegmentationError("the NRRD header gives no 'sizes' or no 'type'", path)
        type_name = one_line(header["type"]).lower()
        if type_name not in _NRRD_TYPE_SIZES:
            raise SegmentationError(f"NRRD type '{type_name[:20]}' is not a number type", path)
        itemsize = _NRRD_TYPE_SIZES[type_name]
        try:
            sizes = [int(n) for n in np.atleast_1d(header["sizes"])]
        except (TypeError, ValueError, OverflowError):
            raise SegmentationError("NRRD 'sizes' are not whole numbers", path) from None
        if not sizes or min(sizes) < 1 or len(sizes) != _header_int(header, ("dimension",), len(sizes), path):
            raise SegmentationError(f"NRRD 'sizes' {sizes} do not match its dimension", path)
        expected = int(np.prod(sizes, dtype=np.float64)) * itemsize
        check_memory(3 * expected, "reading the label map", path, SegmentationError)
        payload, encoding = _nrrd_data_bytes(header, stream, path, expected)
        plain = {key: value for key, value in header.items()
                 if key not in ("data file", "datafile", "line skip", "lineskip", "byte skip", "byteskip")}
        plain["encoding"] = encoding
        try:
            data = nrrd.read_data(plain, io.BytesIO(payload), None, index_order="F")
        except Exception as error:
            raise SegmentationError(f"cannot read the NRRD data: {one_line(error)}", path) from None
    return data, header


def read_nrrd_segments(path: str | os.PathLike) -> list[Segment]:
    """Segments of a NRRD label map or a Slicer ``.seg.nrrd`` segmentation.

    In a ``.seg.nrrd`` segment ``N`` (0-based) is the voxels of layer
    ``Segment<N>_Layer`` equal to ``Segment<N>_LabelValue`` (older files: layer
    ``N``, value 1); its number here is ``N + 1``.

    Raises
    ------
    SegmentationError
        Unreadable or malformed file, no patient space, a degenerate geometry,
        or not a label map.
    """
    path = Path(path)
    data, header = _read_nrrd(path)
    if "space directions" not in header:
        raise SegmentationError("no 'space directions': the grid has no patient geometry", path)
    try:
        directions = np.asarray(header["space directions"], dtype=np.float64)
    except (TypeError, ValueError):
        raise SegmentationError("malformed 'space directions'", path) from None
    if directions.ndim != 2 or directions.shape[0] != data.ndim or directions.shape[1] != 3:
        raise SegmentationError(
            f"'space directions' gives {directions.shape[0] if directions.ndim else 0} vectors for "
            f"{data.ndim} axes; each axis needs a 3D vector or 'none'", path)
    # 'none' (a layer or list axis) is read as NaN; a vector with some NaN is damaged
    spatial = [a for a in range(data.ndim) if not np.isnan(directions[a]).all()]
    others = [a for a in range(data.ndim) if a not in spatial]
    if len(spatial) != 3 or len(others) > 1:
        raise SegmentationError(f"expected a 3D volume (plus at most one layer axis), found shape {data.shape}", path)
    geometry = _nrrd_geometry(header, spatial, [data.shape[a] for a in spatial], path)
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
    if len(names) > MAX_SEGMENTS:
        raise SegmentationError(f"{len(names)} segments, more than the {MAX_SEGMENTS} one file may hold", path)
    boxes_of_layer: dict = {}
    segments = []
    for index, key in names:
        prefix = f"Segment{index}_"
        try:
            layer = int(header.get(prefix + "Layer", index if layers.shape[0] > 1 else 0))
            value = int(header.get(prefix + "LabelValue", 1))
        except (TypeError, ValueError, OverflowError):
            raise SegmentationError(f"malformed {prefix}Layer or {prefix}LabelValue", path) from None
        if not 0 <= layer < layers.shape[0]:
            raise SegmentationError(f"{prefix}Layer {layer} is not a layer of the file", path)
        if layer not in boxes_of_layer:
            boxes_of_layer[layer] = _layer_boxes(layers[layer], path)
        boxes = boxes_of_layer[layer]
        segments.append(Segment(
            number=index + 1,
            name=one_line(header[key]) or f"Segment {index + 1}",
            data=layers[layer],
            geometry=geometry,
            label_value=value,
            color=_slicer_color(header.get(prefix + "Color")),
            path=path,
            box=None if boxes is None else boxes.get(value, ()),
        ))
    return segments


def _layer_boxes(layer: np.ndarray, path: Path) -> dict | None:
    """The box of every positive value of a ``.seg.nrrd`` layer, found in one pass;
    ``None`` for a layer that is not of whole non-negative numbers (boxes unknown)."""
    if layer.dtype.kind not in "iu" or (layer.size and layer.min() < 0):
        return None
    values = np.unique(layer)
    values = values[values > 0]
    if values.size == 0:
        return {}
    return {int(v): box for v, box in zip(values, _label_boxes(layer, values, path))}
