"""Malformed, absurd and hostile segmentations end in :class:`SegmentationError`.

Every failure class that issue 12's campaign and this area's own campaign found
is one named case here: NIfTI with a NaN sform or pixdim, a zero pixdim (which
nibabel silently turns into 1 mm), 18,000 labels in a 36 KB file, text where a
SEG or RTSTRUCT needs numbers, RTSTRUCT contours scaled by 100 and 250 (a 1 GB
model, then memory exhausted), ``--smoothing -1`` and ``--decimate 1``.  Each
asserts the error type, the file and the part of the message that says what is
wrong, one line, and that no library warning escapes.
"""

from __future__ import annotations

import os
import time
import warnings

import nrrd
import numpy as np
import pydicom
import pytest

from encapsulated_stl.cli import main
from encapsulated_stl.errors import EncapsulatedSTLError
from encapsulated_stl.inputs.labelmaps import read_nifti_segments, read_nrrd_segments
from encapsulated_stl.inputs.rtstruct import MAX_CONTOUR_OVERHANG, list_rois
from encapsulated_stl.inputs.segment import MAX_SEGMENTS, SegmentationError
from encapsulated_stl.inputs.segments import models_from_segments, read_segments, reference_stack
from encapsulated_stl.series.slice_geometry import AffineGeometry
from encapsulated_stl.series.source_series import reference_series
from encapsulated_stl.mesh.printability import check_printability
from encapsulated_stl.mesh.surface import extract_surface_mesh
from from_seg_data import (
    model_triangles, nifti_bytes, set_nifti_field, set_raw, sorted_datasets, sphere_contours, sphere_mask, tilted_ct,
    write_rtstruct, write_seg,
)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_segmentations")
    phantom = tilted_ct(root / "ct", tilt=15.0, slice_count=24)
    source = sorted_datasets(phantom)
    shape = (len(source), 64, 64)
    seg = write_seg(root / "seg.dcm", source, sphere_mask(phantom.geometry, shape)[None], ["Ball"])
    rtstruct = write_rtstruct(root / "rs.dcm", source, [("Ball", sphere_contours(phantom.geometry))])
    series = reference_series(phantom.directory)
    stack, _geometry = reference_stack(series)
    return dict(root=root, phantom=phantom, seg=seg, rtstruct=rtstruct, series=series, stack=stack)


def refused(call, path, fragment: str) -> SegmentationError:
    """Run ``call``; it must raise SegmentationError naming ``path`` and saying ``fragment``,
    on one line, with no warning from pydicom, nibabel or numpy."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SegmentationError) as error:
            call()
    message = str(error.value)
    assert message.startswith(f"{path}: ") and fragment in message, message
    assert "\n" not in message
    assert [str(w.message) for w in caught] == []
    return error.value


# --- NIfTI ---------------------------------------------------------------------------


def _ball_ijk(shape=(12, 10, 8)) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.uint8)
    labels[3:8, 3:7, 2:6] = 1
    return labels


NIFTI_CASES = {
    "nan-sform": (lambda b: set_nifti_field(b, "srow_x", np.nan), "the sform is not finite"),
    "inf-sform-offset": (lambda b: set_nifti_field(b, "srow_y", np.inf, index=3), "the sform is not finite"),
    "zero-sform-axis": (lambda b: set_nifti_field(b, "srow_x", 0, 0, 0, 0) and
                        set_nifti_field(b, "srow_y", 0, 0, 0, 0) and set_nifti_field(b, "srow_z", 0, 0, 0, 0),
                        "the sform gives voxel axis i zero length"),
    "coplanar-sform-axes": (lambda b: set_nifti_field(b, "srow_x", 1, 1, 0, 0) and
                            set_nifti_field(b, "srow_y", 1, 1, 0, 0) and set_nifti_field(b, "srow_z", 0, 0, 1, 0),
                            "degenerate: its voxel axes lie (nearly) in one plane"),
    "sform-beyond-any-patient": (lambda b: set_nifti_field(b, "srow_x", 1e30, index=0),
                                 "beyond any patient"),
    "nan-pixdim-with-sform": (lambda b: set_nifti_field(b, "pixdim", np.nan, index=1),
                              "pixdim[1] (voxel size) is nan"),
    "nan-pixdim-with-qform": (lambda b: set_nifti_field(b, "sform_code", 0) and
                              set_nifti_field(b, "pixdim", np.nan, index=2), "pixdim[2] (voxel size) is nan"),
    "zero-pixdim-no-matrix": (lambda b: set_nifti_field(b, "sform_code", 0) and set_nifti_field(b, "qform_code", 0)
                              and set_nifti_field(b, "pixdim", 0.0, index=3), "pixdim[3] (voxel size) is 0"),
    "zero-pixdim-with-qform": (lambda b: set_nifti_field(b, "sform_code", 0) and
                               set_nifti_field(b, "pixdim", 0.0, index=1), "pixdim[1] (voxel size) is 0"),
    "negative-pixdim": (lambda b: set_nifti_field(b, "sform_code", 0) and set_nifti_field(b, "qform_code", 0)
                        and set_nifti_field(b, "pixdim", -2.0, index=1), "pixdim[1] (voxel size) is -2"),
    "nan-qoffset": (lambda b: set_nifti_field(b, "sform_code", 0) and set_nifti_field(b, "qoffset", np.nan),
                    "the qform (quatern_b/c/d, qoffset_x/y/z) is not finite"),
    "qfac-2": (lambda b: set_nifti_field(b, "sform_code", 0) and set_nifti_field(b, "pixdim", 2.0),
               "pixdim[0] (qfac) is 2"),
    "unknown-sform-code": (lambda b: set_nifti_field(b, "sform_code", 99), "sform_code 99 is not a NIfTI"),
    "dims-beyond-memory": (lambda b: set_nifti_field(b, "dim", 3, 30000, 30000, 30000),
                           "reading the label map would need"),
    "truncated-data": (lambda b: b[:400], "cannot read the NIfTI data: Expected"),
    "truncated-header": (lambda b: b[:200], "cannot read as NIfTI"),
}


@pytest.mark.parametrize("mutate, fragment", NIFTI_CASES.values(), ids=NIFTI_CASES.keys())
def test_damaged_nifti_headers_are_refused(tmp_path, capfd, mutate, fragment):
    path = tmp_path / "labels.nii"
    path.write_bytes(bytes(mutate(nifti_bytes(_ball_ijk()))))
    refused(lambda: read_nifti_segments(path), path, fragment)
    # nibabel logs the fields it "fixes" to stderr: nothing may reach it
    assert capfd.readouterr().err == ""


def test_nifti_qfac_zero_is_taken_as_one_as_the_standard_says(tmp_path):
    path = tmp_path / "labels.nii"
    path.write_bytes(bytes(set_nifti_field(set_nifti_field(nifti_bytes(_ball_ijk()), "sform_code", 0),
                                           "pixdim", 0.0)))
    [segment] = read_nifti_segments(path)
    lps = np.diag([-0.8, -0.9, 1.5, 1.0])
    lps[:3, 3] = (20.0, -10.0, 5.0)
    assert np.allclose(segment.geometry.matrix, lps, atol=1e-6)


def test_18000_labels_in_36_kb_are_refused_at_once(tmp_path):
    # every voxel its own label: 30 x 30 x 20 int16 voxels, 36 KB; before, each
    # label was meshed over the whole map (39 ms each, 12 minutes in all)
    labels = (np.random.default_rng(1).permutation(18000) + 1).astype(np.int16).reshape(30, 30, 20)
    path = tmp_path / "labels.nii"
    path.write_bytes(bytes(nifti_bytes(labels)))
    assert path.stat().st_size < 37_000
    started = time.perf_counter()
    refused(lambda: read_nifti_segments(path), path,
            f"18000 distinct labels, more than the {MAX_SEGMENTS} segments one label map may hold")
    assert time.perf_counter() - started < 5.0  # measured 0.01 s


def test_label_boxes_found_in_one_pass_are_each_labels_own(tmp_path):
    rng = np.random.default_rng(7)
    labels = np.zeros((40, 30, 20), dtype=np.uint16)
    for value in rng.choice(np.arange(1, 60000), size=40, replace=False):
        corner = rng.integers(0, (35, 25, 15))
        size = rng.integers(1, 6, size=3)
        labels[corner[0]:corner[0] + size[0], corner[1]:corner[1] + size[1], corner[2]:corner[2] + size[2]] = value
    path = tmp_path / "labels.nii"
    path.write_bytes(bytes(nifti_bytes(labels)))
    segments = read_nifti_segments(path)
    assert len(segments) == len(np.unique(labels)) - 1
    for segment in segments:
        inside = np.argwhere(segment.data == segment.label_value)
        expected = tuple(slice(int(low), int(high) + 1) for low, high in zip(inside.min(0), inside.max(0)))
        assert segment.box == expected and not segment.is_empty
        part = segment.cropped()
        assert int(part.volume.sum()) == len(inside)


# --- NRRD ----------------------------------------------------------------------------


def _nrrd(path, header_changes=None, data=None):
    lps = np.diag([0.8, 0.9, 1.5])
    header = {"space": "left-posterior-superior", "space directions": lps, "space origin": np.zeros(3),
              "kinds": ["domain"] * 3, "encoding": "raw"}
    nrrd.write(str(path), _ball_ijk() if data is None else data, header, index_order="F")
    if header_changes:
        text = path.read_bytes()
        head, _blank, body = text.partition(b"\n\n")
        lines = [line for line in head.split(b"\n")
                 if not any(line.startswith(key.encode() + b":") for key in header_changes)]
        lines += [f"{key}: {value}".encode() for key, value in header_changes.items() if value is not None]
        path.write_bytes(b"\n".join(lines) + b"\n\n" + body)
    return path


NRRD_CASES = {
    "nan-in-a-direction": ({"space directions": "(0.8,nan,0) (0,0.9,0) (0,0,1.5)"}, "is not finite"),
    "zero-direction": ({"space directions": "(0,0,0) (0,0.9,0) (0,0,1.5)"}, "zero length"),
    "coplanar-directions": ({"space directions": "(1,0,0) (1,0.000001,0) (0,0,1.5)"}, "degenerate"),
    "inf-origin": ({"space origin": "(inf,0,0)"}, "'space origin' is not finite"),
    "directions-of-1e308": ({"space directions": "(1e308,0,0) (0,1e308,0) (0,0,1e308)"},
                            "holds 1e+308 mm, beyond any patient"),
    "text-sizes": ({"sizes": "12 ten 8"}, "cannot read as NRRD"),
    "sizes-beyond-memory": ({"sizes": "100000 100000 100000"}, "would need"),
    "unknown-type": ({"type": "block"}, "NRRD type 'block' is not a number type"),
    "hex-encoding": ({"encoding": "hex"}, "encoding 'hex' is not supported"),
    "several-data-files": ({"data file": "LIST"}, "split over several files"),
    "missing-data-file": ({"data file": "missing.raw"}, "missing.raw no such file"),
    "negative-byte-skip": ({"byte skip": "-5"}, "negative"),
    "two-direction-vectors": ({"space directions": "(0.8,0,0) (0,0.9,0)"}, "gives 2 vectors for 3 axes"),
}


@pytest.mark.parametrize("changes, fragment", NRRD_CASES.values(), ids=NRRD_CASES.keys())
def test_damaged_nrrd_headers_are_refused(tmp_path, changes, fragment):
    path = _nrrd(tmp_path / "labels.nrrd", changes)
    refused(lambda: read_nrrd_segments(path), path, fragment)


def test_truncated_nrrd_data_is_refused(tmp_path):
    path = _nrrd(tmp_path / "labels.nrrd")
    path.write_bytes(path.read_bytes()[:-100])
    refused(lambda: read_nrrd_segments(path), path, "the data is truncated: 860 bytes where its sizes need 960")


def test_nrrd_gzip_bomb_is_decompressed_only_as_far_as_its_sizes(tmp_path):
    import gzip

    path = _nrrd(tmp_path / "labels.nrrd", {"encoding": "gzip"})
    head = path.read_bytes().partition(b"\n\n")[0]
    # the 960 declared bytes, then 200 MB of zeros: read, the rest never inflated
    data = _ball_ijk().tobytes(order="F") + bytes(200_000_000)
    path.write_bytes(head + b"\n\n" + gzip.compress(data, compresslevel=1))
    assert path.stat().st_size < 1_000_000
    [segment] = read_nrrd_segments(path)
    assert int(segment.volume.sum()) == int(_ball_ijk().sum())


def test_nrrd_detached_data_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "data.raw"
    os.mkfifo(fifo)
    path = _nrrd(tmp_path / "labels.nhdr", {"data file": "data.raw"})
    started = time.perf_counter()
    refused(lambda: read_nrrd_segments(path), path, f"data file {fifo} is a FIFO (named pipe), not a file")
    assert time.perf_counter() - started < 5.0


# --- DICOM SEG -----------------------------------------------------------------------


def _shared(ds, sequence):
    return ds.SharedFunctionalGroupsSequence[0][sequence][0]


def _first_frame(ds, sequence):
    groups = ds.PerFrameFunctionalGroupsSequence[0]
    return groups[sequence][0] if sequence in groups else _shared(ds, sequence)


SEG_CASES = {
    "text-pixel-spacing": (lambda ds: set_raw(_shared(ds, "PixelMeasuresSequence"), "PixelSpacing", "abc\\1"),
                           "frame 1: PixelSpacing 'abc\\1' is not a number"),
    "nan-pixel-spacing": (lambda ds: set_raw(_shared(ds, "PixelMeasuresSequence"), "PixelSpacing", "nan\\1"),
                          "frame 1: PixelSpacing 'nan\\1' is not a number"),
    "zero-pixel-spacing": (lambda ds: set_raw(_shared(ds, "PixelMeasuresSequence"), "PixelSpacing", "0\\0"),
                           "frame 1: PixelSpacing [0.0, 0.0] must be positive mm"),
    "three-pixel-spacings": (lambda ds: set_raw(_shared(ds, "PixelMeasuresSequence"), "PixelSpacing", "1\\1\\1"),
                             "frame 1: PixelSpacing has 3 values, not 2"),
    "text-position": (lambda ds: set_raw(_first_frame(ds, "PlanePositionSequence"), "ImagePositionPatient",
                                         "x\\1\\2"), "frame 1: ImagePositionPatient 'x\\1\\2' is not a number"),
    "inf-position": (lambda ds: set_raw(_first_frame(ds, "PlanePositionSequence"), "ImagePositionPatient",
                                        "1e999\\1\\2"), "frame 1: ImagePositionPatient is not finite"),
    "underscored-position": (lambda ds: set_raw(_first_frame(ds, "PlanePositionSequence"),
                                                "ImagePositionPatient", "1_000\\1\\2"), "is not a number"),
    "text-orientation": (lambda ds: set_raw(_shared(ds, "PlaneOrientationSequence"), "ImageOrientationPatient",
                                            "a\\b\\c\\d\\e\\f"), "ImageOrientationPatient 'a\\b\\c\\d\\e\\f'"),
    "zero-orientation": (lambda ds: set_raw(_shared(ds, "PlaneOrientationSequence"), "ImageOrientationPatient",
                                            "0\\0\\0\\0\\0\\0"), "is not two orthogonal unit vectors"),
    "text-frame-count": (lambda ds: set_raw(ds, "NumberOfFrames", "abc"), "NumberOfFrames 'abc' is not a number"),
    "frame-count-beyond-items": (lambda ds: set_raw(ds, "NumberOfFrames", "2147483647"),
                                 "per-frame functional group items for 2147483647 frames"),
    "pixel-data-shorter-than-frames": (lambda ds: setattr(ds, "PixelData", ds.PixelData[:100]),
                                       "Pixel Data holds 100 bytes"),
    "rows-beyond-pixel-data": (lambda ds: setattr(ds, "Rows", 65535), "Pixel Data holds"),
    "text-segment-number": (lambda ds: set_raw(ds.SegmentSequence[0], "SegmentNumber", b"ab"),
                            "frames reference segment 1, which the Segment Sequence does not describe"),
    "frames-of-an-undescribed-segment": (lambda ds: setattr(ds.SegmentSequence[0], "SegmentNumber", 99),
                                         "frames reference segment 1"),
    "no-segment-sequence": (lambda ds: delattr(ds, "SegmentSequence"), "no Segment Sequence"),
    "text-maximum-fractional-value": (lambda ds: (setattr(ds, "SegmentationType", "FRACTIONAL"),
                                                  set_raw(ds, "MaximumFractionalValue", b"\x00\x00")),
                                      "MaximumFractionalValue 0 must be 1 or more"),
    "unknown-segmentation-type": (lambda ds: setattr(ds, "SegmentationType", "XYZ"),
                                  "SegmentationType 'XYZ' is not BINARY"),
}


@pytest.mark.parametrize("mutate, fragment", SEG_CASES.values(), ids=SEG_CASES.keys())
def test_seg_with_damaged_numbers_is_refused(case, tmp_path, mutate, fragment):
    ds = pydicom.dcmread(case["seg"])
    mutate(ds)
    path = tmp_path / "seg.dcm"
    ds.save_as(path)
    refused(lambda: read_segments(path, case["series"]), path, fragment)


# --- RTSTRUCT ------------------------------------------------------------------------


def _contour(ds, n=0):
    return ds.ROIContourSequence[0].ContourSequence[n]


RTSTRUCT_CASES = {
    "text-in-contour-data": (lambda ds: set_raw(_contour(ds, 2), "ContourData", "abc\\1\\2\\3\\4\\5\\6\\7\\8"),
                             "ROI 'Ball' contour 3: ContourData 'abc\\1\\2\\3\\4\\5\\6\\7\\8"),
    "nan-in-contour-data": (lambda ds: set_raw(_contour(ds), "ContourData", "nan\\1\\2\\3\\4\\5\\6\\7\\8"),
                            "ROI 'Ball' contour 1: ContourData"),
    "ten-coordinates": (lambda ds: setattr(_contour(ds), "ContourData", list(range(10))),
                        "ROI 'Ball' contour 1: ContourData has 10 coordinates"),
    "empty-contour-data": (lambda ds: set_raw(_contour(ds), "ContourData", b""),
                           "ROI 'Ball' contour 1: ContourData is missing"),
    "text-referenced-roi-number": (lambda ds: set_raw(ds.ROIContourSequence[0], "ReferencedROINumber", "abc"),
                                   "ROI Contour item 1: ReferencedROINumber 'abc' is not a number"),
    "text-roi-number": (lambda ds: set_raw(ds.StructureSetROISequence[0], "ROINumber", "1.5"),
                        "Structure Set ROI item 1: ROINumber must be a whole number"),
    "contours-of-an-unlisted-roi": (lambda ds: setattr(ds.ROIContourSequence[0], "ReferencedROINumber", 7),
                                    "contours for ROI number 7, which the Structure Set ROI Sequence does not list"),
}


@pytest.mark.parametrize("mutate, fragment", RTSTRUCT_CASES.values(), ids=RTSTRUCT_CASES.keys())
def test_rtstruct_with_damaged_numbers_is_refused(case, tmp_path, mutate, fragment):
    ds = pydicom.dcmread(case["rtstruct"])
    mutate(ds)
    path = tmp_path / "rs.dcm"
    ds.save_as(path)
    refused(lambda: read_segments(path, case["series"]), path, fragment)


def test_rtstruct_rois_refuses_text_roi_numbers(case, tmp_path):
    ds = pydicom.dcmread(case["rtstruct"])
    set_raw(ds.StructureSetROISequence[0], "ROINumber", "one")
    path = tmp_path / "rs.dcm"
    ds.save_as(path)
    refused(lambda: list_rois(path), path, "ROINumber 'one' is not a number")


@pytest.mark.parametrize("factor", [100, 250], ids=["scaled-by-100", "scaled-by-250"])
def test_rtstruct_contours_far_outside_the_image_are_refused_before_rasterising(case, tmp_path, factor):
    # each contour scaled in its own plane about its centre: before, x100 was
    # rasterised onto a grid 100 times the image's size (a 1 GB model), x250
    # exhausted memory
    geometry = case["phantom"].geometry
    contours = [c.mean(axis=0) + factor * (c - c.mean(axis=0)) for c in sphere_contours(geometry)]
    path = write_rtstruct(tmp_path / "rs.dcm", sorted_datasets(case["phantom"]), [("Ball", contours)])
    started = time.perf_counter()
    error = refused(lambda: read_segments(path, case["series"]), path, "ROI 'Ball' contour 1: it reaches")
    assert "image widths or heights beyond the 64 x 64 reference image" in str(error)
    assert time.perf_counter() - started < 5.0


def test_rtstruct_contour_within_one_image_size_outside_is_rasterised(case, tmp_path):
    # a body outline may leave the scanned field: up to one image size out is kept
    geometry = case["phantom"].geometry
    contours = [c.mean(axis=0) + 4.0 * (c - c.mean(axis=0)) for c in sphere_contours(geometry)]
    path = write_rtstruct(tmp_path / "rs.dcm", sorted_datasets(case["phantom"]), [("Ball", contours)])
    [segment] = read_segments(path, case["series"])
    assert MAX_CONTOUR_OVERHANG == 1.0 and segment.data.shape[2] > 64  # wider than the image


# --- meshing -------------------------------------------------------------------------


@pytest.mark.parametrize("smoothing", [-1, float("nan"), 2, float("inf"), "abc"],
                         ids=["minus-one", "nan", "two", "inf", "text"])
def test_smoothing_outside_0_to_1_is_refused_before_meshing(case, smoothing):
    segments = read_segments(case["seg"], case["series"])
    refused(lambda: models_from_segments(segments, case["stack"], smoothing=smoothing), case["seg"],
            "smoothing")


@pytest.mark.parametrize("decimate", [1, 3, 0, -5, 3.5, True], ids=["one", "three", "zero", "negative",
                                                                     "fraction", "bool"])
def test_decimation_below_a_tetrahedron_is_refused_before_meshing(case, decimate):
    segments = read_segments(case["seg"], case["series"])
    refused(lambda: models_from_segments(segments, case["stack"], decimate=decimate), case["seg"],
            "decimate")


def test_decimate_4_gives_a_closed_tetrahedron(case, tmp_path):
    [model] = models_from_segments(read_segments(case["seg"], case["series"]), case["stack"], decimate=4)
    model.dataset.save_as(tmp_path / "model.dcm")
    triangles = model_triangles(tmp_path / "model.dcm")
    assert model.triangle_count == 4 and check_printability(triangles).printable


def test_decimation_that_would_open_the_surface_is_refused():
    # two separate balls cannot both stay closed in 6 triangles: VTK's quadric
    # decimation leaves an open mesh, which is refused rather than written
    k, j, i = np.indices((20, 20, 40))
    two = (((i - 10) ** 2 + (j - 10) ** 2 + (k - 10) ** 2 <= 36)
           | ((i - 30) ** 2 + (j - 10) ** 2 + (k - 10) ** 2 <= 36)).astype(np.float32)
    with pytest.raises(EncapsulatedSTLError, match="decimating the surface of 2704 triangles to 6 left a mesh "
                       r"that would not print \([0-9]+ boundary edge"):
        extract_surface_mesh(two, AffineGeometry(np.eye(4)), 0.5, decimate=6)
    points, faces = extract_surface_mesh(two, AffineGeometry(np.eye(4)), 0.5, decimate=8)
    assert len(faces) == 8 and check_printability(points[faces]).printable


@pytest.mark.parametrize("column, fragment", [
    ((0.0, 0.0, 0.0), "flat"),
    ((np.nan, 0.0, 0.0), "non-finite"),
    ((np.inf, 0.0, 0.0), "non-finite"),
    ((1e30, 0.0, 0.0), "beyond any patient"),
], ids=["zero-spacing", "nan-spacing", "inf-spacing", "spacing-1e30"])
def test_surfaces_of_degenerate_geometry_are_never_returned(column, fragment):
    # extract_surface_mesh is also from-ct's: its volume's geometry is checked
    # through the surface it gives
    matrix = np.eye(4)
    matrix[:3, 2] = column
    ball = np.zeros((6, 6, 6), dtype=np.float32)
    ball[2:4, 2:4, 2:4] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(EncapsulatedSTLError, match=fragment):
            extract_surface_mesh(ball, AffineGeometry(matrix), 0.5, smoothing=None)


@pytest.mark.parametrize("option", [["--smoothing", "-1"], ["--decimate", "1"]], ids=["smoothing", "decimate"])
def test_from_seg_with_bad_meshing_options_exits_2_and_writes_nothing(case, tmp_path, capsys, option):
    out = tmp_path / "out"
    try:
        code = main(["from-seg", str(case["seg"]), "--reference", str(case["phantom"].directory), "-o", str(out),
                     *option])
    except SystemExit as exit:  # refused by the option's own parser
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert not out.exists()


# --- found by the campaign -------------------------------------------------------------


@pytest.mark.parametrize("name", ["seg", "rtstruct"])
def test_dicom_cut_inside_a_sequence_is_refused(case, tmp_path, name):
    # pydicom parses a sequence only when it is first read: cut inside one, a file
    # used to raise OSError ("No tag to read") or struct.error from deep in the
    # reader (measured: 28 of 387 such cuts of a SEG, 12 of 96 of an RTSTRUCT)
    from encapsulated_stl.inputs.dicom_seg import read_dicom_seg_segments
    from encapsulated_stl.inputs.rtstruct import read_rtstruct_segments

    read = {"seg": read_dicom_seg_segments,
            "rtstruct": lambda path: read_rtstruct_segments(path, case["stack"])}[name]
    data = case[name].read_bytes()
    items = [i for i in range(len(data)) if data.startswith(b"\xfe\xff\x00\xe0", i)]  # (FFFE,E000) Item
    path = tmp_path / "cut.dcm"
    for cut in sorted({start + offset for start in items for offset in (2, 6, 9)}):
        path.write_bytes(data[:cut])
        try:
            read(path)
        except SegmentationError as error:
            assert str(error).startswith(f"{path}: ") and "\n" not in str(error)


def test_seg_with_an_unknown_vr_inside_a_sequence_is_refused(case, tmp_path):
    data = case["seg"].read_bytes()
    element = b"\x62\x00\x0a\x00SQ"  # (0062,000A) Segment Identification Sequence, explicit VR
    assert element in data
    path = tmp_path / "seg.dcm"
    path.write_bytes(data.replace(element, b"\x62\x00\x0a\x00S\x8e"))
    refused(lambda: read_segments(path, case["series"]), path,
            "cannot read as DICOM SEG: Unknown Value Representation")


def test_seg_with_a_uid_that_is_no_transfer_syntax_is_refused(case, tmp_path):
    data = case["seg"].read_bytes()
    assert data.count(b"1.2.840.10008.1.2.1\x00") == 1
    path = tmp_path / "seg.dcm"
    path.write_bytes(data.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.9\x00"))
    refused(lambda: read_segments(path, case["series"]), path,
            "TransferSyntaxUID '1.2.840.10008.1.2.9' is not a transfer syntax")


def test_invalid_sop_class_uid_is_reported_without_pydicom_warnings(case, tmp_path):
    ds = pydicom.dcmread(case["rtstruct"])
    set_raw(ds, "SOPClassUID", "+1")
    path = tmp_path / "rs.dcm"
    ds.save_as(path)
    refused(lambda: read_segments(path, case["series"]), path, "(SOP Class +1) is not a segmentation")


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
def test_volumes_holding_nan_or_inf_are_refused(value):
    ball = np.zeros((6, 6, 6), dtype=np.float32)
    ball[2:4, 2:4, 2:4] = 1.0
    ball[3, 3, 3] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(EncapsulatedSTLError, match="the volume holds NaN or infinite values"):
            extract_surface_mesh(ball, AffineGeometry(np.eye(4)), 0.5)


def test_geometry_whose_axes_cancel_to_nan_is_refused_without_numpy_warnings():
    # inf along i and -inf along j meet as inf - inf = NaN, which numpy warns about
    # (found by the meshing campaign)
    matrix = np.eye(4)
    matrix[0, 0], matrix[0, 1] = np.inf, -np.inf
    ball = np.zeros((6, 6, 6), dtype=np.float32)
    ball[2:4, 2:4, 2:4] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(EncapsulatedSTLError, match="non-finite"):
            extract_surface_mesh(ball, AffineGeometry(matrix), 0.5)


def test_seg_nrrd_segment_boxes_come_from_one_pass_per_layer(tmp_path):
    labels = _ball_ijk()
    labels[0:2, 0:2, 0:2] = 3
    header = {"space": "left-posterior-superior", "space directions": np.diag([0.8, 0.9, 1.5]),
              "space origin": np.zeros(3), "kinds": ["domain"] * 3,
              "Segment0_Name": "Ball", "Segment0_LabelValue": "1", "Segment0_Layer": "0",
              "Segment1_Name": "Corner", "Segment1_LabelValue": "3", "Segment1_Layer": "0",
              "Segment2_Name": "Absent", "Segment2_LabelValue": "9", "Segment2_Layer": "0"}
    path = tmp_path / "case.seg.nrrd"
    nrrd.write(str(path), labels, header, index_order="F")
    ball, corner, absent = read_nrrd_segments(path)
    for segment in (ball, corner):
        inside = np.argwhere(segment.data == segment.label_value)
        assert segment.box == tuple(slice(int(a), int(b) + 1) for a, b in zip(inside.min(0), inside.max(0)))
        assert not segment.is_empty
    assert absent.box == () and absent.is_empty and absent.cropped() is absent
