"""Reading a CT series into a volume: grouping, filtering, sorting, rescaling, decoding.

Every series here is written as real DICOM files by ``encapsulated_stl.inputs.phantom``; the
expected voxel values are recomputed from each file's own header, independently of
the package's geometry code.
"""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid

from encapsulated_stl.errors import EncapsulatedSTLError, SeriesError
from encapsulated_stl.inputs.phantom import Sphere, phantom_values, write_phantom
from encapsulated_stl.series.volume import read_series_volume

OBJECTS = (Sphere((5.0, -3.0, 30.0), 12.0, 1000.0),)
SMALL = dict(objects=OBJECTS, slice_count=14, rows=48, columns=48, pixel_spacing_mm=(0.9, 0.9), table_start_mm=20.0)


def expected_hu(path, background_hu=0.0, edge_width_mm=8.0) -> np.ndarray:
    """HU of one file's pixels, from its own IPP/IOP/PixelSpacing (not the package's geometry)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    iop = np.asarray(ds.ImageOrientationPatient, float)
    ipp = np.asarray(ds.ImagePositionPatient, float)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    j, i = np.mgrid[0 : ds.Rows, 0 : ds.Columns]
    points = ipp + i[..., None] * dc * iop[:3] + j[..., None] * dr * iop[3:]
    return phantom_values(points, OBJECTS, background_hu, edge_width_mm)


def test_sorted_along_the_normal_with_shuffled_names_and_values_in_hu(tmp_path):
    phantom = write_phantom(tmp_path, tilt_degrees=-17.0, spacing_mm=[1.0, 2.5, 1.5] * 4 + [1.0],
                            missing_slices=[4], shuffle_file_names=True, **SMALL)
    series = read_series_volume(tmp_path)
    assert series.voxels.dtype == np.float32
    assert series.voxels.shape == (13, 48, 48)
    assert [p.name for p in series.source.files] == [p.name for p in phantom.files]
    along = series.geometry.positions @ series.geometry.normal
    assert np.all(np.diff(along) > 0)
    for k in (0, 6, 12):
        # stored integers round the HU: at most half a unit off
        assert np.abs(series.voxels[k] - expected_hu(series.source.files[k])).max() <= 0.5
    # headers only: the pixel data stays in the files (deferred, never read into them)
    assert len(series.source.datasets) == 13
    assert all(ds._dict[0x7FE00010].value is None for ds in series.source.datasets)


@pytest.mark.parametrize("signed, rescale", [(True, (1.0, 0.0)), (True, (0.5, -1000.0)), (False, (2.0, -2048.0))])
def test_signed_unsigned_and_rescale(tmp_path, signed, rescale):
    write_phantom(tmp_path, signed=signed, rescale=rescale, background_hu=-900.0, **SMALL)
    series = read_series_volume(tmp_path)
    expected = expected_hu(series.source.files[7], background_hu=-900.0)
    # quantisation step is the slope: rounding is within half of it
    assert np.abs(series.voxels[7] - expected).max() <= rescale[0] / 2 + 1e-3
    assert series.value_range[0] == pytest.approx(-900.0, abs=rescale[0])


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_transfer_syntaxes_decode_identically(tmp_path, syntax):
    write_phantom(tmp_path / "plain", **SMALL)
    try:
        write_phantom(tmp_path / "packed", transfer_syntax=syntax, **SMALL)
    except NotImplementedError as error:
        # pydicom 2.4 (Slicer up to 5.10) encodes RLE only; JPEG-LS reading is
        # tested on every pydicom with DCMTK's encoder below
        pytest.skip(f"this pydicom cannot write the test data: {error}")
    packed = read_series_volume(tmp_path / "packed")
    assert str(pydicom.dcmread(packed.source.files[0]).file_meta.TransferSyntaxUID) == syntax
    assert np.array_equal(packed.voxels, read_series_volume(tmp_path / "plain").voxels)


@pytest.mark.parametrize(
    "encoder, option, syntax",
    [("dcmcjpeg", "+e1", "1.2.840.10008.1.2.4.70"), ("dcmcjpeg", "+el", "1.2.840.10008.1.2.4.57"),
     ("dcmcjpls", "+el", JPEGLSLossless)],
    ids=["JPEG Lossless SV1", "JPEG Lossless process 14", "JPEG-LS Lossless"],
)
def test_jpeg_lossless_written_by_dcmtk_decodes_identically(tmp_path, encoder, option, syntax):
    # The most common compressed syntaxes of CT archives, written by a real encoder
    # (DCMTK's dcmcjpeg and dcmcjpls) rather than by the project's own code.
    import subprocess

    from conftest import require_tool

    encode = require_tool(encoder, "apt-get install dcmtk")
    phantom = write_phantom(tmp_path / "plain", tilt_degrees=-11.0, background_hu=-1000.0, **SMALL)
    (tmp_path / "packed").mkdir()
    for path in phantom.files:
        subprocess.run([encode, option, str(path), str(tmp_path / "packed" / path.name)], check=True)
    packed = read_series_volume(tmp_path / "packed")
    assert {str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID) for f in packed.source.files} == {syntax}
    plain = read_series_volume(tmp_path / "plain")
    assert np.array_equal(packed.voxels, plain.voxels)
    assert np.ptp(plain.voxels) >= 1900.0  # the phantom does span -1000..1000 HU and more


def test_several_series_need_a_uid_and_localizers_are_dropped(tmp_path):
    phantom = write_phantom(tmp_path, distractor=True, shuffle_file_names=True, **SMALL)
    with pytest.raises(SeriesError) as error:
        read_series_volume(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "--series-uid" in message
    coarse, localizer = phantom.distractor_series_uids
    assert phantom.series_instance_uid in message and coarse in message
    assert localizer not in message  # a localizer-only series is no candidate

    series = read_series_volume(tmp_path, phantom.series_instance_uid)
    assert len(series.source) == 14
    assert [reason for _path, reason in series.skipped] == ["localizer"]
    assert read_series_volume(tmp_path, coarse).voxels.shape[1:] == (32, 32)

    with pytest.raises(SeriesError, match="no series with UID 1.2.3"):
        read_series_volume(tmp_path, "1.2.3")


def test_images_with_another_orientation_are_dropped(tmp_path):
    phantom = write_phantom(tmp_path, **SMALL)
    odd = pydicom.dcmread(phantom.files[3])
    odd.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    odd.SOPInstanceUID = generate_uid()
    odd.save_as(tmp_path / "odd.dcm")
    series = read_series_volume(tmp_path)
    assert len(series.source) == 14
    assert [(p.name, "orientation" in reason) for p, reason in series.skipped] == [("odd.dcm", True)]


def test_duplicate_positions_are_an_error_naming_both_files(tmp_path):
    phantom = write_phantom(tmp_path, **SMALL)
    twin = pydicom.dcmread(phantom.files[5])
    twin.SOPInstanceUID = generate_uid()
    twin.save_as(tmp_path / "twin.dcm")
    with pytest.raises(SeriesError, match="same position") as error:
        read_series_volume(tmp_path)
    assert "twin.dcm" in str(error.value) and phantom.files[5].name in str(error.value)


def test_short_pixel_data_is_refused_before_decoding_naming_the_file(tmp_path):
    phantom = write_phantom(tmp_path, **SMALL)
    broken = pydicom.dcmread(phantom.files[2])
    broken.PixelData = broken.PixelData[:100]
    broken.save_as(phantom.files[2])
    with pytest.raises(SeriesError, match="holds 100 bytes, but .* need 4608 bytes") as error:
        read_series_volume(tmp_path)
    assert str(error.value).startswith(f"{phantom.files[2]}: ")
    assert "1 of 14 files" in str(error.value)


def test_undecodable_compressed_pixels_name_the_file(tmp_path):
    phantom = write_phantom(tmp_path, transfer_syntax=RLELossless, **SMALL)
    broken = pydicom.dcmread(phantom.files[2])
    # the RLE header's segment count, then garbage: the frame cannot be decoded
    broken.PixelData = pydicom.encaps.encapsulate([b"\x07" + b"\xff" * 63])
    broken.save_as(phantom.files[2])
    with pytest.raises(SeriesError, match="cannot decode the pixel data") as error:
        read_series_volume(tmp_path)
    assert str(error.value).startswith(f"{phantom.files[2]}: ")


def test_no_images_and_missing_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("not DICOM")
    with pytest.raises(SeriesError, match="no CT or MR image series"):
        read_series_volume(tmp_path)
    with pytest.raises(EncapsulatedSTLError, match="no such file"):
        read_series_volume(tmp_path / "absent")


def test_series_given_as_files(tmp_path):
    phantom = write_phantom(tmp_path, **SMALL)
    series = read_series_volume([str(p) for p in reversed(phantom.files)])
    assert series.source.files == phantom.files


def test_single_slice_series(tmp_path):
    phantom = write_phantom(tmp_path, **SMALL)
    for extra in phantom.files[1:]:
        extra.unlink()
    series = read_series_volume(tmp_path)
    assert series.voxels.shape == (1, 48, 48)
    shutil.rmtree(tmp_path)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("shape", [(64, 48), (16, 20)], ids=["deferred", "inline"])
def test_pixels_read_straight_from_the_file_match_pydicom_bit_for_bit(tmp_path, signed, shape):
    # The fast path reads native 16-bit pixels at the offset the header scan found;
    # bits above Bits Stored must come out as pydicom 3 makes them (masked or
    # sign-extended), garbage in the high bits included, and so must the path
    # through pydicom's decoders on any pydicom (2.4 hands the garbage on).
    from encapsulated_stl.series.source_series import scan_series
    from encapsulated_stl.series.volume import decoded_pixels, _native_pixels

    rows, columns = shape
    phantom = write_phantom(tmp_path, slice_count=2, rows=rows, columns=columns, signed=signed)
    path = phantom.files[0]
    dataset = pydicom.dcmread(path)
    rng = np.random.default_rng(3)
    words = rng.integers(0, 1 << 16, size=shape, dtype=np.uint16)
    dataset.BitsStored, dataset.HighBit = 12, 11
    dataset.PixelData = words.astype("<u2").tobytes()
    dataset.save_as(path)
    header = next(ds for s in scan_series(tmp_path) for ds in s.datasets if ds.SOPInstanceUID == dataset.SOPInstanceUID)
    fast = _native_pixels(header, path, shape)
    # above 4 kB the scan left the pixels in the file; below, they came with the header
    assert fast is not None and (header._dict[0x7FE00010].value is None) == (rows * columns * 2 > 4096)
    low = (words & 0x0FFF).astype(np.int32)
    expected = ((low ^ 0x0800) - 0x0800).astype(np.int16) if signed else low.astype(np.uint16)
    assert fast.dtype == expected.dtype and np.array_equal(fast, expected)
    decoded = decoded_pixels(path)[0]
    assert decoded.dtype == expected.dtype and np.array_equal(decoded, expected)
    assert (expected.min() < 0) == signed


def test_border_gives_the_same_voxels_in_a_padded_array(tmp_path):
    write_phantom(tmp_path, tilt_degrees=9.0, background_hu=-700.0, **SMALL)
    plain = read_series_volume(tmp_path)
    bordered = read_series_volume(tmp_path, border=1)
    assert np.array_equal(bordered.voxels, plain.voxels)
    assert bordered.voxels.base.shape == (16, 50, 50)
    # the range is noted while reading: right, and still known once voxels are dropped
    assert bordered.value_range == (float(plain.voxels.min()), float(plain.voxels.max()))
    bordered.voxels = None
    assert bordered.value_range[0] == pytest.approx(-700.0, abs=0.5)
