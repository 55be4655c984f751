"""Fuzz test of the source series reader.

A four-slice phantom series is damaged at random - geometry, rescale and pixel
module values replaced by numbers, NaN, Inf, text, empty or raw bytes with any
number of values; attributes deleted; files cut short, bytes flipped, a slice
swapped for garbage, bytes spliced into an enhanced image's functional groups -
and read with :func:`find_source_series` and
:func:`read_series_volume`.  Each must either succeed with a sound result (a
geometry of finite positive spacing and orthonormal directions, finite voxels, a
reference to every slice) or raise the project's own error with a one-line
message; never another exception, never a warning.  The classes of failure this
and the larger campaign found are named cases in ``test_hostile_series.py``.
"""

from __future__ import annotations

import functools
import io
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pydicom
from hypothesis import given
from hypothesis import strategies as st

from encapsulated_stl.errors import EncapsulatedSTLError
from encapsulated_stl.inputs.phantom import Sphere, write_phantom
from encapsulated_stl.series.source_series import find_source_series
from encapsulated_stl.series.volume import read_series_volume
from test_hostile_series import enhanced_ct

SLICES = 4

#: Short-VR elements whose value bytes are replaced, with their VR's kind.
TEXT_KEYWORDS = ("PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient", "RescaleSlope",
                 "RescaleIntercept", "SliceThickness", "ImageType", "SOPInstanceUID", "StudyInstanceUID",
                 "SeriesInstanceUID", "Modality")
BINARY_KEYWORDS = ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "SamplesPerPixel",
                   "PixelRepresentation")
DELETABLE = TEXT_KEYWORDS + BINARY_KEYWORDS + ("PixelData", "SOPClassUID", "PhotometricInterpretation")


@functools.lru_cache(maxsize=2)
def originals(kind: str) -> dict[str, bytes]:
    """The phantom's files by name: ``single`` frames, or one ``enhanced`` CT of them
    (a module-level cache: hypothesis would print a fixture)."""
    with tempfile.TemporaryDirectory() as folder:
        written = write_phantom(folder, objects=(Sphere((0.0, 0.0, 18.0), 5.0, 1000.0),), slice_count=SLICES,
                                rows=8, columns=8, pixel_spacing_mm=(3.0, 3.0), table_start_mm=15.0,
                                tilt_degrees=12.0)
        if kind == "enhanced":
            return {"ct.dcm": enhanced_ct(written.files, Path(folder) / "enhanced" / "ct.dcm").read_bytes()}
        return {path.name: path.read_bytes() for path in written.files}


def element_span(data: bytes, keyword: str) -> tuple[int, int, int] | None:
    """``(start of the element, start of its value, end)`` in an explicit VR LE file,
    ``None`` when the (already damaged) file does not have it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(io.BytesIO(data))
    except Exception:  # damaged by an earlier mutation: leave it as it is
        return None
    raw = dataset._dict.get(pydicom.datadict.tag_for_keyword(keyword))
    if raw is None or not hasattr(raw, "value_tell"):
        return None
    header = 12 if raw.VR in ("OB", "OW", "SQ", "UN", "UT", "UC", "UR", "OF", "OD", "OL", "OV") else 8
    return raw.value_tell - header, raw.value_tell, raw.value_tell + raw.length


def replace_value(data: bytes, keyword: str, value: bytes) -> bytes:
    span = element_span(data, keyword)
    if span is None:
        return data
    start, value_start, end = span
    if value_start - start == 12:
        length = struct.pack("<I", len(value) + len(value) % 2)
    else:
        value = value[:0xFFFE]
        length = struct.pack("<H", len(value) + len(value) % 2)
    value += b" " * (len(value) % 2)
    return data[: value_start - len(length)] + length + value + data[end:]


def delete_element(data: bytes, keyword: str) -> bytes:
    span = element_span(data, keyword)
    return data if span is None else data[: span[0]] + data[span[2]:]


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: repr(v).encode()),
    st.sampled_from([b"0", b"-0", b"1", b"-1", b"1e30", b"1e-30", b"1e400", b"0.5", b"65535", b"nan", b"inf",
                     b"abc", b"", b" ", b"1_000", b"0x10", b"1.2.3", b"\x00", b"+", b"1e", b"\xff\xfe"]),
    st.integers(-10**20, 10**20).map(lambda v: str(v).encode()),
)
text_values = st.one_of(st.lists(numbers, min_size=0, max_size=8).map(b"\\".join), st.binary(max_size=40))
binary_values = st.one_of(st.integers(0, 65535).map(lambda v: struct.pack("<H", v)), st.binary(max_size=6))

mutation = st.one_of(
    st.tuples(st.just("text"), st.integers(0, SLICES - 1), st.sampled_from(TEXT_KEYWORDS), text_values),
    st.tuples(st.just("binary"), st.integers(0, SLICES - 1), st.sampled_from(BINARY_KEYWORDS), binary_values),
    st.tuples(st.just("delete"), st.integers(0, SLICES - 1), st.sampled_from(DELETABLE), st.none()),
    st.tuples(st.just("cut"), st.integers(0, SLICES - 1), st.floats(0, 1), st.none()),
    st.tuples(st.just("flip"), st.integers(0, SLICES - 1), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("garbage"), st.integers(0, SLICES - 1), st.binary(max_size=600), st.none()),
    st.tuples(st.just("splice"), st.integers(0, SLICES - 1), st.floats(0, 1), st.binary(min_size=1, max_size=12)),
)


def mutate(files: dict[str, bytes], change) -> None:
    kind, index, what, value = change
    name = sorted(files)[index % len(files)]
    data = files[name]
    if kind in ("text", "binary"):
        files[name] = replace_value(data, what, value)
    elif kind == "delete":
        files[name] = delete_element(data, what)
    elif kind == "cut":
        files[name] = data[: int(what * len(data))]
    elif kind == "flip" and data:
        at = min(len(data) - 1, int(what * len(data)))
        files[name] = data[:at] + bytes([data[at] ^ value]) + data[at + 1:]
    elif kind == "garbage":
        files[name] = what
    elif kind == "splice":  # reaches into sequences (an enhanced image's functional groups)
        at = int(what * len(data))
        files[name] = data[:at] + value + data[at + len(value):]


def assert_sound_or_refused(read, folder: Path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = read(folder)
        except EncapsulatedSTLError as error:
            assert "\n" not in str(error) and str(error).strip(), repr(str(error))
            result = None
    assert not caught, [str(w.message) for w in caught]
    return result


@given(kind=st.sampled_from(["single", "enhanced"]), changes=st.lists(mutation, min_size=1, max_size=3))
def test_damaged_series_reads_soundly_or_is_refused(kind, changes):
    files = dict(originals(kind))
    for change in changes:
        mutate(files, change)
    with tempfile.TemporaryDirectory() as folder:
        for name, data in files.items():
            (Path(folder) / name).write_bytes(data)
        series = assert_sound_or_refused(find_source_series, Path(folder))
        if series is not None:
            assert len(series) == len(files) and not series.unreadable  # every instance referenced
        volume = assert_sound_or_refused(read_series_volume, Path(folder))
    if volume is None:
        return
    geometry = volume.geometry
    spacing = np.asarray(geometry.pixel_spacing)
    assert np.isfinite(spacing).all() and (spacing > 0).all()
    assert np.isfinite(geometry.positions).all()
    directions = np.stack([geometry.row_direction, geometry.column_direction])
    assert np.abs(directions @ directions.T - np.eye(2)).max() < 1e-9
    assert np.isfinite(volume.voxels).all()
    assert len(volume.source) + len(volume.skipped) == SLICES
