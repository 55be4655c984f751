"""Test data and measurements for the ``from-seg`` tests.

Segmentations of a sphere of known centre and radius (LPS mm) on synthetic tilted
CT series written as real DICOM by :mod:`encapsulated_stl.inputs.phantom`: DICOM SEG built
with highdicom, RTSTRUCT built with pydicom, NIfTI and NRRD label maps.  And the
measurements the tests assert: least-squares sphere fit and enclosed volume of a
triangle mesh.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from encapsulated_stl.iod.file_format import write_file_format
from encapsulated_stl.iod.model import read_encapsulated_model
from encapsulated_stl.inputs.phantom import Sphere, enclosed_volume, fit_sphere, write_phantom  # noqa: F401
from encapsulated_stl.inputs.segment import LABEL_MAP_SEGMENTATION_STORAGE, RT_STRUCTURE_SET_STORAGE

#: The sphere every segmentation here shows (LPS mm).  Its edge in the phantom CT
#: is irrelevant: the segmentations are computed from the true shape.
CENTRE = np.array([6.0, -4.0, 43.0])
RADIUS = 13.0


def tilted_ct(directory: Path, tilt: float = 25.0, rotation: float = 0.0, **options):
    """A small tilted CT phantom series (64 x 64 x 36, 1 mm pixels, 1.5 mm table steps)."""
    settings = dict(
        objects=(Sphere(tuple(CENTRE), RADIUS, 1000.0),), tilt_degrees=tilt,
        rotation_degrees=rotation, slice_count=36, spacing_mm=1.5, table_start_mm=17.0,
        rows=64, columns=64, pixel_spacing_mm=(1.0, 1.0), centre_mm=(4.0, -2.0),
    )
    settings.update(options)
    return write_phantom(directory, **settings)


def sorted_datasets(phantom) -> list[Dataset]:
    return [pydicom.dcmread(f) for f in phantom.files]


def sphere_fraction(geometry, shape, centre=CENTRE, radius=RADIUS, samples: int = 4) -> np.ndarray:
    """``[k, j, i]`` fraction of each voxel's (sheared) cell inside the sphere.

    Sub-samples are placed in voxel-index space and mapped through ``geometry``, so
    the cell is exactly the one the mesh's voxel-index interpolation uses.
    """
    slices, rows, columns = shape
    offsets = (np.arange(samples) + 0.5) / samples - 0.5
    di, dj, dk = (a.ravel() for a in np.meshgrid(offsets, offsets, offsets, indexing="ij"))
    jj, ii = np.mgrid[0:rows, 0:columns]
    out = np.zeros(shape, dtype=np.float32)
    for k in range(slices):
        ijk = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k)], axis=1).astype(np.float64)
        centre_distance = np.linalg.norm(geometry.lps_from_index(ijk) - centre, axis=1) - radius
        near = np.flatnonzero(np.abs(centre_distance) < 2.5)
        inside = (centre_distance < 0).astype(np.float32)
        if near.size == 0:
            out[k] = inside.reshape(rows, columns)
            continue
        sub = ijk[near, None, :] + np.stack([di, dj, dk], axis=1)[None]
        points = geometry.lps_from_index(sub.reshape(-1, 3)).reshape(len(near), -1, 3)
        inside[near] = (np.linalg.norm(points - centre, axis=2) <= radius).mean(axis=1)
        out[k] = inside.reshape(rows, columns)
    return out


def sphere_mask(geometry, shape, centre=CENTRE, radius=RADIUS) -> np.ndarray:
    """``[k, j, i]`` uint8: 1 where the voxel centre is inside the sphere."""
    k, j, i = np.indices(shape)
    ijk = np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1)
    inside = np.linalg.norm(geometry.lps_from_index(ijk) - centre, axis=1) <= radius
    return inside.reshape(shape).astype(np.uint8)


def segment_description(number: int, label: str, rgb=None) -> hd.seg.SegmentDescription:
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label,
        segmented_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical structure"),
        segmented_property_type=hd.sr.CodedConcept("39607008", "SCT", "Lung"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    if rgb is not None:
        from encapsulated_stl.iod.color import dicom_lab_from_rgb
        description.RecommendedDisplayCIELabValue = list(dicom_lab_from_rgb(rgb))
    return description


def write_seg(path: Path, source: list[Dataset], masks: np.ndarray, labels, kind="BINARY",
              colors=None) -> Path:
    """A DICOM SEG on the sorted ``source`` slices.

    ``masks`` is ``[segment, k, j, i]`` (one mask or fraction per segment) or a
    ``[k, j, i]`` array of segment numbers.
    """
    colors = colors or [None] * len(labels)
    with _numpy_float_alias():
        seg = hd.seg.Segmentation(
            source_images=source,
            pixel_array=masks if masks.ndim == 3 else np.moveaxis(masks, 0, -1),
            segmentation_type=kind,
            segment_descriptions=[segment_description(n + 1, label, rgb)
                                  for n, (label, rgb) in enumerate(zip(labels, colors))],
            series_instance_uid=generate_uid(), series_number=40, sop_instance_uid=generate_uid(),
            instance_number=1, manufacturer="test", manufacturer_model_name="test",
            software_versions="1", device_serial_number="1",
        )
    seg.save_as(path)
    return path


REFERENCED_SEGMENT_NUMBER = 0x0062000B


def write_label_map_seg(path: Path, source: list[Dataset], labels: np.ndarray, names) -> Path:
    """A Label Map SEG (Supplement 243) of ``labels``, ``[k, j, i]`` segment numbers.

    highdicom writes these only from 0.23 (pydicom 3), so this is its BINARY SEG of
    where any label is, made a label map as highdicom 0.28 makes one: the same
    frames, planes and references, 8-bit label values, segment 0 "Background"
    first, and positions as the only dimension.
    """
    write_seg(path, source, (labels > 0).astype(np.uint8), ["Labelled"])
    seg = pydicom.dcmread(path)
    source_heights = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in source])
    slices = []
    for item in seg.PerFrameFunctionalGroupsSequence:
        position = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        slices.append(int(np.argmin(np.linalg.norm(source_heights - position, axis=1))))
        item.pop("SegmentIdentificationSequence", None)
        content = item.FrameContentSequence[0]
        content.DimensionIndexValues = [
            value for value, dimension in zip(content.DimensionIndexValues, seg.DimensionIndexSequence)
            if dimension.DimensionIndexPointer != REFERENCED_SEGMENT_NUMBER
        ]
    seg.SharedFunctionalGroupsSequence[0].pop("SegmentIdentificationSequence", None)
    seg.DimensionIndexSequence = [dimension for dimension in seg.DimensionIndexSequence
                                  if dimension.DimensionIndexPointer != REFERENCED_SEGMENT_NUMBER]
    seg.SOPClassUID = seg.file_meta.MediaStorageSOPClassUID = LABEL_MAP_SEGMENTATION_STORAGE
    seg.SegmentationType = "LABELMAP"
    seg.BitsAllocated, seg.BitsStored, seg.HighBit = 8, 8, 7
    seg.add_new(0x00280120, "US", 0)  # Pixel Padding Value, US for unsigned pixels
    seg.SegmentsOverlap = "NO"
    background = hd.sr.CodedConcept("125040", "DCM", "Background")
    first = Dataset()
    first.SegmentedPropertyCategoryCodeSequence = [background]
    first.SegmentNumber = 0
    first.SegmentLabel = "Background"
    first.SegmentAlgorithmType = "MANUAL"
    first.SegmentedPropertyTypeCodeSequence = [background]
    seg.SegmentSequence = [first] + [segment_description(n + 1, name) for n, name in enumerate(names)]
    seg.PixelData = np.ascontiguousarray(labels[slices], dtype=np.uint8).tobytes()
    write_file_format(seg, path)
    return path


@contextlib.contextmanager
def _numpy_float_alias():
    """``np.float_`` while highdicom builds a SEG, where numpy no longer has it.

    highdicom 0.22 (the last for pydicom 2) names ``np.float_`` in Segmentation's
    constructor, which numpy 2 removed: Slicer 5.10 bundles both.  Only for the
    constructor, so the code under test never sees the alias.
    """
    if hasattr(np, "float_"):
        yield
        return
    np.float_ = np.float64
    try:
        yield
    finally:
        del np.float_


def circle(centre, radius, u, v, points: int = 128) -> np.ndarray:
    """``(points, 3)`` vertices of a polygon of the circle's area in the plane (u, v)."""
    # the equal-area polygon: an inscribed N-gon scaled so its area is pi r^2
    scaled = radius * np.sqrt(2 * np.pi / (points * np.sin(2 * np.pi / points)))
    phi = np.linspace(0.0, 2 * np.pi, points, endpoint=False)
    return centre + scaled * (np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v)


def sphere_contours(geometry, centre=CENTRE, radius=RADIUS) -> list[np.ndarray]:
    """The sphere's closed planar contours on each slice plane of ``geometry`` (LPS mm)."""
    contours = []
    n = geometry.normal
    for position in geometry.positions:
        d = float((centre - position) @ n)
        if abs(d) < radius:
            contours.append(circle(centre - d * n, np.sqrt(radius**2 - d**2),
                                   geometry.row_direction, geometry.column_direction))
    return contours


def write_rtstruct(path: Path, source: list[Dataset], rois: list[tuple[str, list[np.ndarray]]],
                   colors=None, frame_of_reference_uid: str | None = None) -> Path:
    """An RT Structure Set with ``(name, contours)`` ROIs drawn on ``source``."""
    first = source[0]
    frame = frame_of_reference_uid or first.FrameOfReferenceUID
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "StudyTime"):
        setattr(ds, keyword, first.get(keyword, ""))
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 50
    ds.StructureSetLabel = "test"
    images = Sequence()
    for image in source:
        item = Dataset()
        item.ReferencedSOPClassUID = image.SOPClassUID
        item.ReferencedSOPInstanceUID = image.SOPInstanceUID
        images.append(item)
    series = Dataset()
    series.SeriesInstanceUID = first.SeriesInstanceUID
    series.ContourImageSequence = images
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study.RTReferencedSeriesSequence = [series]
    frame_item = Dataset()
    frame_item.FrameOfReferenceUID = frame
    frame_item.RTReferencedStudySequence = [study]
    ds.ReferencedFrameOfReferenceSequence = [frame_item]
    ds.StructureSetROISequence = Sequence()
    ds.ROIContourSequence = Sequence()
    ds.RTROIObservationsSequence = Sequence()
    colors = colors or [(255, 0, 0)] * len(rois)
    for number, ((name, contours), color) in enumerate(zip(rois, colors), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "MANUAL"
        ds.StructureSetROISequence.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ROIDisplayColor = list(color)
        item.ContourSequence = Sequence()
        for points in contours:
            contour = Dataset()
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(points)
            contour.ContourData = [float(f"{v:.4f}") for v in np.asarray(points).ravel()]
            item.ContourSequence.append(contour)
        ds.ROIContourSequence.append(item)
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = "ORGAN"
        observation.ROIInterpreter = ""
        ds.RTROIObservationsSequence.append(observation)
    write_file_format(ds, path)
    return path


# --- measurements -----------------------------------------------------------------


def sphere_errors(triangles: np.ndarray, centre=CENTRE, radius=RADIUS) -> dict:
    """Centre and radius errors of the fitted sphere, RMS / max surface distance (mm)."""
    points = np.unique(triangles.reshape(-1, 3), axis=0)
    fitted_centre, fitted_radius = fit_sphere(points)
    distance = np.linalg.norm(points - centre, axis=1) - radius
    return {
        "centre": float(np.linalg.norm(fitted_centre - centre)),
        "radius": abs(fitted_radius - radius),
        "rms": float(np.sqrt(np.mean(distance**2))),
        "max": float(np.abs(distance).max()),
        "volume": enclosed_volume(triangles) / (4 / 3 * np.pi * radius**3) - 1.0,
    }


def model_triangles(path: Path) -> np.ndarray:
    return read_encapsulated_model(path).mesh.triangles.astype(np.float64)


# --- hostile inputs -----------------------------------------------------------------


def set_raw(item: Dataset, keyword: str, text) -> None:
    """Store ``text`` as the undecoded value of ``keyword`` in ``item``, as a file
    that holds it would: pydicom's setters refuse text in a DS, a reader must not."""
    from pydicom.dataelem import RawDataElement
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    tag = pydicom.tag.Tag(tag_for_keyword(keyword))
    value = text.encode("latin-1") if isinstance(text, str) else bytes(text)
    if len(value) % 2:
        value += b" "
    vr = dictionary_VR(tag).split(" or ")[0]
    item._dict[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)


#: NIfTI-1 header fields: (byte offset, struct format) in a little-endian .nii.
NIFTI_FIELDS = {
    "dim": (40, "8h"), "datatype": (70, "h"), "bitpix": (72, "h"), "pixdim": (76, "8f"),
    "vox_offset": (108, "f"), "scl_slope": (112, "f"), "scl_inter": (116, "f"),
    "qform_code": (252, "h"), "sform_code": (254, "h"), "quatern": (256, "3f"),
    "qoffset": (268, "3f"), "srow_x": (280, "4f"), "srow_y": (296, "4f"), "srow_z": (312, "4f"),
}


def nifti_bytes(labels_ijk: np.ndarray, spacing=(0.8, 0.9, 1.5)) -> bytearray:
    """An uncompressed .nii of ``labels_ijk`` with matching sform (code 2) and qform (code 1)."""
    import io
    import nibabel as nib

    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-20.0, 10.0, 5.0)
    image = nib.Nifti1Image(labels_ijk, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=2)
    stream = io.BytesIO()
    nib.Nifti1Image.make_file_map({"image": stream, "header": stream})
    image.to_file_map({"image": nib.FileHolder(fileobj=stream), "header": nib.FileHolder(fileobj=stream)})
    return bytearray(stream.getvalue())


def set_nifti_field(data: bytearray, field: str, *values, index: int = 0) -> bytearray:
    """``data`` with NIfTI header ``field`` (from element ``index`` on) set to ``values``."""
    import struct

    offset, fmt = NIFTI_FIELDS[field]
    kind = fmt[-1]
    struct.pack_into(f"<{len(values)}{kind}", data, offset + index * struct.calcsize(kind), *values)
    return data
