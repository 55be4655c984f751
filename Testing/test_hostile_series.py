"""Hostile source series: every damaged, absurd or special input ends in SeriesError.

A small phantom series (six 16 x 16 slices, written by ``encapsulated_stl.inputs.phantom``)
is damaged one way at a time - a header value replaced by NaN, Inf, text or the
wrong number of values at the byte level, an attribute deleted, a file cut short
or swapped for garbage, a FIFO dropped in the folder - and the series reader must
refuse it with a one-line message that names the file and the attribute, before
reading pixels or allocating memory; or, where the input is usable (slightly
rounded orientations, non-DICOM files beside the series), read it with a sound
geometry.  Every class of failure the hostile-input campaign found is a case here.
Warnings are errors in this module: none may escape the reader.
"""

from __future__ import annotations

import io
import os
import signal
import struct
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from encapsulated_stl.errors import EncapsulatedSTLError, SeriesError
from encapsulated_stl.iod.file_format import write_file_format
from encapsulated_stl.files import available_memory
from encapsulated_stl.inputs.phantom import Sphere, write_phantom
from encapsulated_stl.series.slice_geometry import ORTHONORMAL_TOLERANCE, SliceGeometry
from encapsulated_stl.series.source_series import find_source_series, scan_series
from encapsulated_stl.series.volume import image_stack, read_series_volume

pytestmark = pytest.mark.filterwarnings("error")

SLICES = 6
TINY = dict(objects=(Sphere((0.0, 0.0, 20.0), 6.0, 1000.0),), slice_count=SLICES, rows=16, columns=16,
            pixel_spacing_mm=(2.0, 2.0), table_start_mm=15.0, tilt_degrees=0.0)


def phantom(folder: Path, **options):
    return write_phantom(folder, **{**TINY, **options})


def set_raw(path: Path, keyword: str, value: bytes) -> None:
    """Replace one short-VR element's value bytes in an explicit VR little endian file.

    pydicom refuses to write text into a DS element; a hostile file has it anyway.
    """
    data = path.read_bytes()
    dataset = pydicom.dcmread(io.BytesIO(data))
    raw = dataset._dict[pydicom.datadict.tag_for_keyword(keyword)]
    start, end = raw.value_tell, raw.value_tell + raw.length
    value += b" " * (len(value) % 2)
    path.write_bytes(data[: start - 2] + struct.pack("<H", len(value)) + value + data[end:])


def edit(path: Path, change) -> None:
    """Read ``path``, let ``change(dataset)`` alter it, write it back (pydicom's
    warnings about the bad values written are the point, not a fault)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = pydicom.dcmread(path)
        change(dataset)
        dataset.save_as(path)


def refused(source, *fragments, reader=read_series_volume) -> str:
    """The one-line SeriesError ``reader(source)`` raises, checked to contain ``fragments``."""
    with pytest.raises(SeriesError) as raised:
        reader(source)
    message = str(raised.value)
    assert "\n" not in message and "\r" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def assert_sound(volume) -> None:
    geometry = volume.geometry
    spacing = np.asarray(geometry.pixel_spacing)
    assert np.isfinite(spacing).all() and (spacing > 0).all()
    assert abs(np.linalg.norm(geometry.row_direction) - 1) < 1e-12
    assert abs(np.linalg.norm(geometry.column_direction) - 1) < 1e-12
    assert abs(geometry.row_direction @ geometry.column_direction) < 1e-12
    assert np.isfinite(volume.voxels).all()


# -- a header value that is no number, not finite, or the wrong count ----------

DAMAGE = {
    "nan": b"nan",
    "inf": b"inf",
    "text": b"abc",
    "underscore": b"1_000",
}
COUNTS = {"PixelSpacing": 2, "ImagePositionPatient": 3, "ImageOrientationPatient": 6,
          "RescaleSlope": 1, "RescaleIntercept": 1}
TAGS = {"PixelSpacing": "(0028,0030)", "ImagePositionPatient": "(0020,0032)",
        "ImageOrientationPatient": "(0020,0037)", "RescaleSlope": "(0028,1053)",
        "RescaleIntercept": "(0028,1052)"}


def damaged_values(keyword: str, damage: str) -> bytes:
    """The stored values of ``keyword`` with the first replaced, or one too many/few."""
    good = {"PixelSpacing": [b"2", b"2"], "ImagePositionPatient": [b"-15", b"-15", b"20"],
            "ImageOrientationPatient": [b"1", b"0", b"0", b"0", b"1", b"0"],
            "RescaleSlope": [b"1"], "RescaleIntercept": [b"-1024"]}[keyword]
    if damage == "one too many":
        return b"\\".join(good + [b"1"])
    if damage == "one too few":
        return b"\\".join(good[:-1]) if len(good) > 1 else b"1\\1"
    return b"\\".join([DAMAGE[damage]] + good[1:])


@pytest.mark.parametrize("damage", [*DAMAGE, "one too many", "one too few"])
@pytest.mark.parametrize("keyword", list(COUNTS))
def test_unusable_number_in_one_slice_names_file_and_attribute(tmp_path, keyword, damage):
    files = phantom(tmp_path).files
    set_raw(files[2], keyword, damaged_values(keyword, damage))
    message = refused(tmp_path, f"{keyword} {TAGS[keyword]}", f"1 of {SLICES} files")
    assert message.startswith(f"{files[2]}: ")


# -- geometry that reads as numbers but is degenerate ----------------------------

@pytest.mark.parametrize("spacing, found", [
    ("0\\0.5", "['0', '0.5']"),
    ("-2\\2", "['-2', '2']"),
    ("1e30\\1e30", "['1e30', '1e30']"),
    ("0.00001\\2", "['0.00001', '2']"),
], ids=["zero", "negative", "1e30", "below 0.1 um"])
def test_degenerate_pixel_spacing_in_every_slice_is_refused(tmp_path, spacing, found):
    for path in phantom(tmp_path).files:
        set_raw(path, "PixelSpacing", spacing.encode())
    refused(tmp_path, f"PixelSpacing (0028,0030) must be two numbers from 0.0001 to 1000 mm, found {found}")


def test_position_beyond_a_kilometre_is_refused(tmp_path):
    files = phantom(tmp_path).files
    set_raw(files[0], "ImagePositionPatient", b"-15\\-15\\2e6")
    refused(tmp_path, "ImagePositionPatient (0020,0032) must be three finite numbers within +-1e+06 mm")


def test_collapsed_positions_are_refused(tmp_path):
    for path in phantom(tmp_path).files:
        set_raw(path, "ImagePositionPatient", b"-15\\-15\\20")
    refused(tmp_path, "two slices at the same position")


@pytest.mark.parametrize("orientation", [
    b"1\\0\\0\\0.1\\1\\0",  # 5.7 degrees from orthogonal
    b"1.1\\0\\0\\0\\1\\0",  # row 10 % too long
    b"1\\0\\0\\1\\0\\0",  # row = column: no plane at all
    b"0\\0\\0\\0\\1\\0",  # a zero vector
], ids=["sheared", "too long", "parallel", "zero"])
def test_non_orthonormal_orientation_is_refused(tmp_path, orientation):
    for path in phantom(tmp_path).files:
        set_raw(path, "ImageOrientationPatient", orientation)
    refused(tmp_path, "ImageOrientationPatient (0020,0037) is not two orthogonal unit vectors",
            f"tolerance {ORTHONORMAL_TOLERANCE:g}")


def test_orientation_rounded_within_tolerance_is_made_orthonormal(tmp_path):
    # 20 degree tilt written with 4 decimals: dot 4e-5, lengths off by 3e-5
    for path in phantom(tmp_path, tilt_degrees=20.0).files:
        set_raw(path, "ImageOrientationPatient", b"1\\0\\0\\0\\0.9397\\-0.3421")
    volume = read_series_volume(tmp_path)
    assert_sound(volume)
    exact = np.array([0.0, np.cos(np.radians(20)), -np.sin(np.radians(20))])
    assert np.abs(volume.geometry.column_direction - exact).max() < 1e-4


def test_slice_geometry_refuses_what_no_reader_may_build():
    with pytest.raises(SeriesError, match="slice positions must be finite"):
        SliceGeometry([[0, 0, np.nan]], (1, 0, 0), (0, 1, 0), (1, 1))
    with pytest.raises(SeriesError, match="not orthonormal"):
        SliceGeometry([[0, 0, 0]], (1, 0, 0), (0.5, 1, 0), (1, 1))
    with pytest.raises(SeriesError, match="pixel spacing must be two numbers"):
        SliceGeometry([[0, 0, 0]], (1, 0, 0), (0, 1, 0), (0, 1))


# -- image pixel module and rescale ---------------------------------------------

def frames_as_text(path: Path) -> None:
    edit(path, lambda ds: setattr(ds, "NumberOfFrames", 1))
    set_raw(path, "NumberOfFrames", b"abc")


@pytest.mark.parametrize("change, fragment", [
    (lambda ds: setattr(ds, "Rows", 0), "Rows (0028,0010) must be an integer from 1 to 65535, found ['0']"),
    (lambda ds: setattr(ds, "BitsAllocated", 12), "BitsAllocated (0028,0100) must be one of 1, 8, 16, 32, 64"),
    (lambda ds: setattr(ds, "BitsStored", 17), "BitsStored (0028,0101) must be an integer from 1 to 16"),
    (lambda ds: setattr(ds, "SamplesPerPixel", 3), "SamplesPerPixel (0028,0002) is 3: only grayscale"),
    (lambda ds: setattr(ds, "PixelRepresentation", 2), "PixelRepresentation (0028,0103) must be an integer from 0 to 1"),
    (frames_as_text, "NumberOfFrames (0028,0008) must be an integer"),
    (lambda ds: setattr(ds, "NumberOfFrames", 1_000_000), "1000000 frame(s) x 16 bits) need 512000000 bytes"),
    (lambda ds: delattr(ds, "PixelData"), "no Pixel Data (7FE0,0010)"),
    (lambda ds: delattr(ds, "ImagePositionPatient"), "no ImagePositionPatient (0020,0032), though the image has"),
    (lambda ds: setattr(ds, "RescaleSlope", "0"), "RescaleSlope (0028,1053) must be one finite number other than 0"),
    (lambda ds: setattr(ds, "RescaleSlope", "1e35"), "must stay within +-1e+30"),
], ids=["rows 0", "bits allocated 12", "bits stored 17", "rgb", "pixel representation 2",
        "frames text", "a million frames", "no pixel data", "no position", "slope 0", "slope 1e35"])
def test_unusable_pixel_headers_are_refused_before_reading(tmp_path, change, fragment):
    files = phantom(tmp_path).files
    if change is frames_as_text:
        change(files[3])
    else:
        edit(files[3], change)
    message = refused(tmp_path, fragment)
    assert message.startswith(f"{files[3]}: ")


def test_65535_squared_header_in_a_small_file_is_refused_at_once(tmp_path):
    files = phantom(tmp_path).files
    for path in files:
        edit(path, lambda ds: (setattr(ds, "Rows", 65535), setattr(ds, "Columns", 65535)))
    started = time.perf_counter()
    refused(tmp_path, "Pixel Data (7FE0,0010) holds 512 bytes", "need 8589672450 bytes",
            f"{SLICES} of {SLICES} files")
    assert time.perf_counter() - started < 2.0


def test_compressed_volume_beyond_memory_is_refused_before_allocating(tmp_path):
    # compressed pixel data says nothing of its decoded size: the memory check does
    files = phantom(tmp_path, transfer_syntax=RLELossless).files
    for path in files:
        edit(path, lambda ds: (setattr(ds, "Rows", 65535), setattr(ds, "Columns", 65535)))
    needed = SLICES * 65535 * 65535 * 4
    if (available_memory() or 0) >= needed:
        pytest.skip("this machine has the memory for the volume")
    refused(tmp_path, f"a volume of {SLICES} slices of 65535 x 65535 voxels would need", "of memory")


def rle_frame(*segments: bytes) -> bytes:
    """One RLE Lossless frame: the 64-byte header of segment offsets, then the segments."""
    offsets = list(np.cumsum([64] + [len(segment) for segment in segments[:-1]]))
    return struct.pack("<16I", len(segments), *offsets, *[0] * (15 - len(segments))) + b"".join(segments)


def test_rle_segment_overrunning_its_frame_is_refused_without_a_word_on_stderr(tmp_path, capfd):
    # pylibjpeg-rle (which pydicom 3 would pick) panics in Rust on this and
    # prints to stderr; the campaign found it.  A literal run of 128 bytes per
    # segment, for a frame whose segments hold 64.
    files = phantom(tmp_path, transfer_syntax=RLELossless).files
    overrun = bytes([127]) + b"\x01" * 128
    edit(files[2], lambda ds: setattr(ds, "PixelData", pydicom.encaps.encapsulate([rle_frame(overrun, overrun)])))
    message = refused(tmp_path, "cannot decode the pixel data (transfer syntax RLE Lossless)")
    assert message.startswith(f"{files[2]}: ")
    assert capfd.readouterr().err == ""


# -- missing UIDs, files cut short or swapped for garbage -----------------------

@pytest.mark.parametrize("keyword, tag", [
    ("StudyInstanceUID", "(0020,000D)"), ("SOPInstanceUID", "(0008,0018)"), ("SOPClassUID", "(0008,0016)")])
def test_slice_missing_a_uid_makes_the_series_unusable(tmp_path, keyword, tag):
    files = phantom(tmp_path).files
    edit(files[1], lambda ds: delattr(ds, keyword))
    for reader in (read_series_volume, find_source_series):
        message = refused(tmp_path, f"no {keyword} {tag}", f"1 of {SLICES} files", reader=reader)
        assert message.startswith(f"{files[1]}: ")


def test_every_slice_missing_the_study_uid(tmp_path):
    for path in phantom(tmp_path).files:
        edit(path, lambda ds: delattr(ds, "StudyInstanceUID"))
    refused(tmp_path, "no StudyInstanceUID (0020,000D)", f"{SLICES} of {SLICES} files",
            reader=find_source_series)


def test_image_stack_refuses_what_the_volume_reader_refuses(tmp_path):
    files = phantom(tmp_path).files
    set_raw(files[4], "PixelSpacing", b"nan\\2")
    series = scan_series(tmp_path)[0]
    with pytest.raises(SeriesError, match=r"PixelSpacing \(0028,0030\) must be two numbers"):
        image_stack(series, tmp_path)


@pytest.mark.parametrize("cut, fragment", [
    (-1, "the file ends inside PixelData (7FE0,0010): 511 of 512 bytes present"),
    (-300, "the file ends inside PixelData (7FE0,0010): 212 of 512 bytes present"),
    ("before pixels", "no Pixel Data (7FE0,0010): the file is cut short"),
], ids=["last byte", "inside pixels", "before pixels"])
def test_slice_cut_short_is_named_never_dropped(tmp_path, cut, fragment):
    files = phantom(tmp_path).files
    data = files[2].read_bytes()
    if cut == "before pixels":
        cut = data.index(b"\xe0\x7f\x10\x00")  # (7FE0,0010) little endian
    files[2].write_bytes(data[:cut])
    for reader in (read_series_volume, find_source_series):
        message = refused(tmp_path, fragment, f"1 of {SLICES} files", reader=reader)
        assert message.startswith(f"{files[2]}: ")


def test_slice_cut_before_its_series_uid_is_refused_by_the_scan(tmp_path):
    files = phantom(tmp_path).files
    data = files[2].read_bytes()
    files[2].write_bytes(data[: data.index(b"\x20\x00\x0e\x00")])  # (0020,000E)
    message = refused(tmp_path, "no SeriesInstanceUID (0020,000E)", f"1 of {SLICES} DICOM files", reader=scan_series)
    assert message.startswith(f"{files[2]}: ")


def test_transfer_syntax_with_two_values_is_refused(tmp_path):
    # found by the campaign: a list where one UID belongs made the pixel checks raise TypeError
    files = phantom(tmp_path).files
    data = files[2].read_bytes()
    files[2].write_bytes(data.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2\\11", 1))
    message = refused(tmp_path, "TransferSyntaxUID (0002,0010) is not a UID", f"1 of {SLICES} files")
    assert message.startswith(f"{files[2]}: ")


@pytest.mark.parametrize("content", [b"", b"\x00" * 100, os.urandom(3000)], ids=["empty", "zeros", "garbage"])
def test_slice_swapped_for_garbage_is_refused(tmp_path, content):
    files = phantom(tmp_path).files
    files[5].write_bytes(content)
    message = refused(tmp_path, "named as DICOM but is not", reader=scan_series)
    assert message.startswith(f"{files[5]}: ")


def test_garbage_after_a_dicom_preamble_is_refused(tmp_path):
    files = phantom(tmp_path).files
    files[5].write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7f" + b"1" * 40)
    refused(tmp_path, str(files[5]), reader=scan_series)


def test_non_dicom_files_and_dicomdir_beside_the_series_are_skipped(tmp_path):
    phantom(tmp_path)
    (tmp_path / "README.txt").write_text("a series\n")
    (tmp_path / "notes").write_bytes(os.urandom(500))
    directory = Dataset()  # a DICOMDIR: DICOM, but of no series
    directory.file_meta = FileMetaDataset()
    directory.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    directory.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    directory.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    directory.FileSetID = "SERIES"
    directory.DirectoryRecordSequence = []
    write_file_format(directory, tmp_path / "DICOMDIR")
    assert pydicom.filereader.read_file_meta_info(tmp_path / "DICOMDIR").MediaStorageSOPClassUID == "1.2.840.10008.1.3.10"
    volume = read_series_volume(tmp_path)
    assert len(volume.source) == SLICES and volume.skipped == []
    assert_sound(volume)


# -- special files -----------------------------------------------------------------

@pytest.fixture
def alarm():
    """Fail instead of hanging, should a reader open a FIFO."""
    def expired(_signum, _frame):
        raise AssertionError("the reader blocked")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_in_the_directory_is_never_opened(tmp_path, alarm):
    phantom(tmp_path)
    os.mkfifo(tmp_path / "CT9999.dcm")
    volume = read_series_volume(tmp_path)
    assert len(volume.source) == SLICES


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_or_device_given_as_the_series_is_refused_at_once(tmp_path, alarm):
    os.mkfifo(tmp_path / "pipe.dcm")
    refused(tmp_path / "pipe.dcm", "is a FIFO (named pipe), not a file", reader=scan_series)
    refused("/dev/zero", "/dev/zero: is a character device, not a file", reader=find_source_series)


def test_no_such_file(tmp_path):
    with pytest.raises(EncapsulatedSTLError, match="no such file or directory"):
        read_series_volume(tmp_path / "absent")


def test_a_damaged_second_series_does_not_block_the_named_one(tmp_path):
    good = phantom(tmp_path / "a")
    other = phantom(tmp_path / "b")
    set_raw(other.files[0], "PixelSpacing", b"nan\\2")
    volume = read_series_volume(tmp_path, good.series_instance_uid)
    assert len(volume.source) == SLICES
    refused(tmp_path, "PixelSpacing (0028,0030)", reader=lambda p: read_series_volume(p, other.series_instance_uid))
    # not named: both are candidates, and the user is asked to choose
    refused(tmp_path, "2 series found; choose one with --series-uid")


def test_one_instance_twice_is_named_as_such(tmp_path):
    files = phantom(tmp_path).files
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "again.dcm").write_bytes(files[3].read_bytes())
    refused(tmp_path, "the same instance twice", "again.dcm", files[3].name, "remove one copy")


@pytest.mark.parametrize("shift_mm, refused_", [(1.0, False), (4.0, True), (1e5, True)],
                         ids=["27 degrees", "63 degrees", "far off"])
def test_a_slice_far_off_the_stack_line_is_refused(tmp_path, shift_mm, refused_):
    # untilted slices 2 mm apart; one shifted sideways by shift_mm: against each
    # neighbour a shear of atan(shift / 2 mm)
    files = phantom(tmp_path, spacing_mm=2.0).files
    x, y, z = (float(v) for v in pydicom.dcmread(files[3]).ImagePositionPatient)
    set_raw(files[3], "ImagePositionPatient", f"{x + shift_mm:g}\\{y:g}\\{z:g}".encode())
    if refused_:
        refused(tmp_path, "mm apart within the slice plane", "more than 60 degrees", files[3].name)
    else:
        assert_sound(read_series_volume(tmp_path))


def test_duplicate_instance_position_names_both_files(tmp_path):
    files = phantom(tmp_path).files
    twin = pydicom.dcmread(files[3])
    twin.SOPInstanceUID = generate_uid()
    twin.save_as(tmp_path / "twin.dcm")
    refused(tmp_path, "two slices at the same position", "twin.dcm", files[3].name)


# -- enhanced (multi-frame) images --------------------------------------------------

def enhanced_ct(files: list[Path], target: Path) -> Path:
    """The phantom's slices as one Enhanced CT image: plane orientation, pixel
    measures and rescale in the shared functional group, each frame's position
    in its own."""
    slices = [pydicom.dcmread(path) for path in files]
    ds = pydicom.dcmread(files[0])
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
                    "RescaleSlope", "RescaleIntercept", "RescaleType", "SliceLocation", "InstanceNumber"):
        delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.NumberOfFrames = len(slices)
    shared = Dataset()
    shared.PlaneOrientationSequence = [Dataset()]
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = slices[0].ImageOrientationPatient
    shared.PixelMeasuresSequence = [Dataset()]
    shared.PixelMeasuresSequence[0].PixelSpacing = slices[0].PixelSpacing
    shared.PixelMeasuresSequence[0].SliceThickness = slices[0].SliceThickness
    shared.PixelValueTransformationSequence = [Dataset()]
    shared.PixelValueTransformationSequence[0].RescaleSlope = slices[0].RescaleSlope
    shared.PixelValueTransformationSequence[0].RescaleIntercept = slices[0].RescaleIntercept
    shared.PixelValueTransformationSequence[0].RescaleType = "HU"
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.PerFrameFunctionalGroupsSequence = []
    for item in slices:
        frame = Dataset()
        frame.PlanePositionSequence = [Dataset()]
        frame.PlanePositionSequence[0].ImagePositionPatient = item.ImagePositionPatient
        ds.PerFrameFunctionalGroupsSequence.append(frame)
    ds.PixelData = b"".join(item.PixelData for item in slices)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_file_format(ds, target)
    return target


def test_enhanced_ct_built_here_reads_as_its_slices(tmp_path):
    files = phantom(tmp_path / "single").files
    enhanced_ct(files, tmp_path / "multi" / "ct.dcm")
    single, multi = read_series_volume(tmp_path / "single"), read_series_volume(tmp_path / "multi")
    assert np.array_equal(single.voxels, multi.voxels)
    assert np.abs(single.geometry.positions - multi.geometry.positions).max() < 1e-9


@pytest.mark.parametrize("damage, fragment", [
    (lambda ds: setattr(ds.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence[0],
                        "ImagePositionPatient", ["nan", "0", "0"]),
     "frame 3: ImagePositionPatient (0020,0032) must be three finite numbers"),
    (lambda ds: setattr(ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0], "PixelSpacing", [0, 0]),
     "frame 1: PixelSpacing (0028,0030) must be two numbers from 0.0001 to 1000 mm, found ['0.0', '0.0']"),
    (lambda ds: setattr(ds, "NumberOfFrames", 100_000),
     "16 x 16 x 100000 frame(s) x 16 bits) need 51200000 bytes"),
    (lambda ds: setattr(ds, "SharedFunctionalGroupsSequence", []),
     "frame 1: no ImageOrientationPatient (0020,0037), though the image has ImagePositionPatient"),
], ids=["frame position NaN", "shared spacing 0", "frames beyond the pixel data", "no shared group"])
def test_damaged_enhanced_ct_is_refused_naming_file_and_frame(tmp_path, damage, fragment):
    path = enhanced_ct(phantom(tmp_path / "single").files, tmp_path / "multi" / "ct.dcm")
    edit(path, damage)
    message = refused(tmp_path / "multi", fragment)
    assert message.startswith(f"{path}: ")


def test_enhanced_ct_with_an_unknown_vr_in_a_functional_group(tmp_path):
    # found by the fuzz test: one flipped bit turned Rescale Type's VR into 'MO',
    # which pydicom cannot convert; the frame's header must carry it unconverted
    files = phantom(tmp_path / "single").files
    path = enhanced_ct(files, tmp_path / "multi" / "ct.dcm")
    data = path.read_bytes()
    assert data.count(b"\x28\x00\x54\x10LO") == 1  # (0028,1054) Rescale Type, LO
    path.write_bytes(data.replace(b"\x28\x00\x54\x10LO", b"\x28\x00\x54\x10MO"))
    volume = read_series_volume(tmp_path / "multi")
    assert np.array_equal(volume.voxels, read_series_volume(tmp_path / "single").voxels)
