"""Damaged, truncated and misencoded Encapsulated STL objects end in the project's errors.

Every case here is a failure class a hostile-input campaign found (issue 12): the file
cut inside its meta information, inside Source Instance Sequence, one byte short or
right after its document; (0042,0011), (0042,0015), the units sequence and other
attributes written with an unexpected VR or value; absurd lengths; special files.
Each asserts the exact outcome: the error type and what its one-line message names,
or the model read with the unusable attribute reported in ``problems``.
"""

from __future__ import annotations

import os
import struct
import threading
import tracemalloc
import warnings

import numpy as np
import pydicom
import pytest
from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from encapsulated_stl.iod.encapsulate import ModelMetadata, NewStudy, encapsulate_stl, save_dataset
from encapsulated_stl.errors import NotEncapsulatedSTLError, StlFormatError
from encapsulated_stl.iod.file_format import write_file_format
from encapsulated_stl.iod.model import read_encapsulated_model
from stl_samples import binary_stl_by_hand, cube_triangles
from test_read_producers import _written_by_others

pytestmark = pytest.mark.filterwarnings("error")  # no library warning may escape the reader

CUBE = cube_triangles(25.0, origin=(-40.0, 10.0, 600.0))
STL = binary_stl_by_hand(CUBE, header=b"CAD export")
SOURCES = 5


def ct_headers(count: int = SOURCES) -> list[Dataset]:
    """Headers of a small CT series (no pixels): what a model references."""
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    headers = []
    for number in range(count):
        ds = Dataset()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientName, ds.PatientID = "CT", "Phantom^Skull", "PH-1"
        ds.InstanceNumber = number + 1
        headers.append(ds)
    return headers


def our_object(path, sources: int = SOURCES):
    """An object as this project writes it: sources, colour, opacity, usage, group."""
    metadata = ModelMetadata(content_description="Skull", usage="planning", laterality="B",
                             color=(1.0, 0.0, 0.0), opacity=0.5, model_group_uid="1.2.3.4")
    return save_dataset(encapsulate_stl(STL, ct_headers(sources) if sources else None, metadata,
                                        NewStudy(patient_id="PH-1")), path)


def rewritten(source, target, syntax):
    """``source`` written again in another little-endian transfer syntax."""
    ds = pydicom.dcmread(source)
    ds.file_meta.TransferSyntaxUID = syntax
    if int(pydicom.__version__.split(".")[0]) < 3:
        ds.is_implicit_VR, ds.is_little_endian = syntax == ImplicitVRLittleEndian, True
    write_file_format(ds, target)
    return target


def with_undefined_lengths(source, target):
    """``source`` with every sequence and item of undefined length, closed by delimiters
    (as DCMTK and many producers write them; this project writes defined lengths)."""
    ds = pydicom.dcmread(source)

    def mark(dataset):
        for element in dataset:
            if element.VR == "SQ":
                element.is_undefined_length = True
                for item in element.value:
                    item.is_undefined_length_sequence_item = True
                    mark(item)

    mark(ds)
    write_file_format(ds, target)
    return target


def orthanc_object(path):
    return _written_by_others(path, binary_stl_by_hand(CUBE), ("mm", "UCUM", "STL model"),
                              title="STL model", manufacturer="Orthanc STL plugin")


def dcm4che_object(path):
    return _written_by_others(path, STL, ("m", "UCUM", "m"), manufacturer="UNKNOWN", length=len(STL))


def element_offset(data: bytes, tag: int, vr: bytes) -> int:
    """Offset of the explicit VR little endian header of ``tag`` (found by its bytes)."""
    return data.index(struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr)


def value_end(data: bytes, tag: int, vr: bytes) -> int:
    """Offset just past the value of a defined-length explicit VR little endian element."""
    start = element_offset(data, tag, vr)
    if vr in (b"OB", b"SQ", b"UT", b"UN"):
        return start + 12 + struct.unpack_from("<L", data, start + 8)[0]
    return start + 8 + struct.unpack_from("<H", data, start + 6)[0]


def with_element(source, target, tag: int, vr: str, value):
    """``source`` with ``tag`` replaced by an element of ``vr`` holding ``value``, written as
    pydicom writes what it is given (no validation: the point is a misencoded element)."""
    ds = pydicom.dcmread(source)
    mode = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's, about the value this test misencodes
            ds[tag] = DataElement(tag, vr, value)
            write_file_format(ds, target)
    finally:
        config.settings.writing_validation_mode = mode
    return target


def refused(path, error=NotEncapsulatedSTLError) -> str:
    """The reason given for ``path``: the error's type is ``error``, its message one line
    that starts with the file's name."""
    with pytest.raises(error) as caught:
        read_encapsulated_model(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return caught.value.reason


def refused_measuring_memory(path) -> tuple[str, int]:
    """:func:`refused`'s reason for ``path``, and the peak bytes Python allocated meanwhile."""
    tracemalloc.start()
    try:
        reason = refused(path)
        return reason, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def ours(tmp_path):
    return our_object(tmp_path / "ours.dcm")


# -- truncation ------------------------------------------------------------------------


def test_a_whole_object_reads_with_every_source(ours):
    model = read_encapsulated_model(ours)
    assert bytes(model.stl) == STL and model.problems == []
    assert len(model.source_instance_uids) == SOURCES
    assert model.usage == "planning" and model.opacity == 0.5
    np.testing.assert_allclose(model.color, (1.0, 0.0, 0.0), atol=0.01)


def cut(path, length, target=None):
    data = path.read_bytes()
    target = target or path
    target.write_bytes(data[:length])
    return target


@pytest.mark.parametrize("offset, reason", [
    (100, "not a DICOM file"),
    (131, "not a DICOM file"),
    (150, "the file ends inside the file meta information"),
    (132 + 12 + 12 + 1, "the file ends inside the file meta information > File Meta Information Version (0002,0001)"),
], ids=["inside-preamble", "inside-DICM", "inside-meta-header", "inside-meta-value"])
def test_cut_inside_preamble_or_file_meta(ours, offset, reason):
    assert reason in refused(cut(ours, offset))


def test_cut_inside_source_instance_sequence_names_it(ours):
    data = ours.read_bytes()
    start = element_offset(data, 0x00420013, b"SQ")
    length = struct.unpack_from("<L", data, start + 8)[0]  # this project writes defined lengths
    reason = refused(cut(ours, start + 12 + length // 2))
    assert reason.startswith(f"the file ends inside Source Instance Sequence (0042,0013) (its value is "
                             f"declared as {length} bytes, {length // 2} remain)")


def test_cut_inside_an_undefined_length_source_instance_sequence_names_the_item(ours, tmp_path):
    path = with_undefined_lengths(ours, tmp_path / "undefined.dcm")
    third = read_encapsulated_model(path).source_instance_uids[2]
    data = path.read_bytes()
    inside = data.index(third.encode(), element_offset(data, 0x00420013, b"SQ")) + 10
    reason = refused(cut(path, inside))
    assert reason.startswith("the file ends inside Source Instance Sequence (0042,0013) > item 3 > "
                             "Referenced SOP Instance UID (0008,1155) (its value is declared as")


def test_cut_before_the_sequence_delimiter_of_source_instance_sequence(ours, tmp_path):
    path = with_undefined_lengths(ours, tmp_path / "undefined.dcm")
    assert len(read_encapsulated_model(path).source_instance_uids) == SOURCES
    data = path.read_bytes()
    start = element_offset(data, 0x00420013, b"SQ")
    delimiter = data.index(b"\xfe\xff\xdd\xe0\0\0\0\0\xfe\xff\x0d\xe0", start) + 8  # after the last item's
    reason = refused(cut(path, delimiter + 8))
    assert "Source Instance Sequence (0042,0013)" in reason and "no sequence delimiter" in reason


def test_missing_last_byte(ours):
    size = ours.stat().st_size
    reason = refused(cut(ours, size - 1))
    # the icon is the object's last element: an item of 8 attributes and 4096 pixels
    assert reason.startswith("the file ends inside Icon Image Sequence (0088,0200)")
    assert "declared as 4206 bytes, 4205 remain" in reason


def test_cut_inside_the_document(ours):
    data = ours.read_bytes()
    start = element_offset(data, 0x00420011, b"OB") + 12
    reason = refused(cut(ours, start + 100))
    assert f"Encapsulated Document (0042,0011) (its value is declared as {len(STL)} bytes, 100 remain)" in reason


def test_cut_inside_an_element_header(ours):
    data = ours.read_bytes()
    reason = refused(cut(ours, element_offset(data, 0x00420012, b"LO") + 5))
    assert "5 bytes left where an element header of 8 or 12 is due" in reason


def test_cut_right_after_the_document(ours):
    data = ours.read_bytes()
    reason = refused(cut(ours, value_end(data, 0x00420011, b"OB")))
    assert reason.startswith("MIME Type of Encapsulated Document (0042,0012) is missing")


def test_cut_right_before_source_instance_sequence(ours):
    data = ours.read_bytes()
    reason = refused(cut(ours, element_offset(data, 0x00420013, b"SQ")))
    assert f"Source Instance Sequence (0042,0013) is missing, though Common Instance Reference lists {SOURCES}" in reason


def test_cut_inside_a_deflated_data_set(ours, tmp_path):
    deflated = rewritten(ours, tmp_path / "deflated.dcm", DeflatedExplicitVRLittleEndian)
    assert len(read_encapsulated_model(deflated).source_instance_uids) == SOURCES
    assert "the file ends inside its deflated data set" in refused(cut(deflated, deflated.stat().st_size - 20))


def test_cut_implicit_vr_object_inside_source_instance_sequence(ours, tmp_path):
    implicit = rewritten(ours, tmp_path / "implicit.dcm", ImplicitVRLittleEndian)
    assert len(read_encapsulated_model(implicit).source_instance_uids) == SOURCES
    data = implicit.read_bytes()
    start = data.index(struct.pack("<HH", 0x0042, 0x0013))
    assert "the file ends inside Source Instance Sequence (0042,0013)" in refused(cut(implicit, start + 200))


@pytest.mark.parametrize("producer", [orthanc_object, dcm4che_object], ids=["orthanc", "dcm4che"])
def test_other_producers_objects_missing_their_last_byte(tmp_path, producer):
    path = producer(tmp_path / "other.dcm")
    read_encapsulated_model(path)
    assert refused(cut(path, path.stat().st_size - 1)).startswith("the file ends inside ")


# -- lengths and structure -------------------------------------------------------------


def patched(path, offset: int, fmt: str, value: int):
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))
    return path


def test_an_element_claiming_4_gb_in_a_small_file_is_refused_without_allocating(ours):
    data = ours.read_bytes()
    patched(ours, element_offset(data, 0x00420011, b"OB") + 8, "<L", 0xFFFFFFF0)
    reason, peak = refused_measuring_memory(ours)
    assert "Encapsulated Document (0042,0011) (its value is declared as 4294967280 bytes" in reason
    assert peak < 2 * 1024 * 1024, peak  # the header walk, not the declared 4 GB


def test_an_item_longer_than_its_sequence_is_refused(ours):
    data = ours.read_bytes()
    sequence = element_offset(data, 0x00420013, b"SQ")
    item = data.index(b"\xfe\xff\x00\xe0", sequence)
    patched(ours, item + 4, "<L", struct.unpack_from("<L", data, item + 4)[0] + 2000)
    reason = refused(ours)
    assert "Source Instance Sequence (0042,0013) > item 1" in reason


def test_undefined_length_text_element_is_refused(ours):
    data = ours.read_bytes()
    offset = element_offset(data, 0x00420012, b"LO")
    damaged = data[:offset + 4] + b"UT\0\0" + b"\xff\xff\xff\xff" + data[offset + 8:]
    ours.write_bytes(damaged)
    assert "MIME Type of Encapsulated Document (0042,0012) has undefined length" in refused(ours)


def test_sequences_nested_beyond_reason_are_refused_before_pydicom_recurses(tmp_path):
    ds = pydicom.dcmread(our_object(tmp_path / "o.dcm", sources=0))
    inner = Dataset()
    inner.CodeValue = "x"
    for _ in range(200):
        outer = Dataset()
        outer.ConceptNameCodeSequence = [inner]
        inner = outer
    ds.ContentSequence = [inner]
    write_file_format(ds, tmp_path / "deep.dcm")
    assert "nests sequences more than 32 deep" in refused(tmp_path / "deep.dcm")


def test_document_in_fragments_is_refused(ours):
    data = ours.read_bytes()
    offset = element_offset(data, 0x00420011, b"OB")
    length = struct.unpack_from("<L", data, offset + 8)[0]
    value = data[offset + 12:offset + 12 + length]
    fragments = (data[:offset + 8] + b"\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0" + struct.pack("<L", length)
                 + value + b"\xfe\xff\xdd\xe0\0\0\0\0" + data[offset + 12 + length:])
    ours.write_bytes(fragments)
    assert "Encapsulated Document (0042,0011) is stored in fragments" in refused(ours)


def test_bytes_after_the_last_element_are_refused(ours):
    ours.write_bytes(ours.read_bytes() + b"\0\0\0")
    assert "the file ends inside the data set (3 bytes left where an element header" in refused(ours)


def test_a_garbage_vr_is_refused(ours):
    data = bytearray(ours.read_bytes())
    offset = element_offset(bytes(data), 0x00420012, b"LO")
    data[offset + 4:offset + 6] = b"x7"
    ours.write_bytes(bytes(data))
    assert "MIME Type of Encapsulated Document (0042,0012) has no valid value representation" in refused(ours)


# -- special files ---------------------------------------------------------------------


def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "model.dcm"
    os.mkfifo(fifo)
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(refused(fifo)), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert "FIFO" in outcome[0]


@pytest.mark.parametrize("path, kind", [("/dev/zero", "character device"), ("/", "directory")])
def test_devices_and_directories_are_refused(path, kind):
    assert kind in refused(path)


def test_an_empty_file_is_not_dicom(tmp_path):
    (tmp_path / "empty.dcm").write_bytes(b"")
    assert refused(tmp_path / "empty.dcm") == "not a DICOM file (the file is empty)"


# -- misencoded attributes -------------------------------------------------------------


@pytest.mark.parametrize("vr, value", [("LO", "abc"), ("UT", "solid cube"), ("US", 7), ("SQ", [])],
                         ids=["LO", "UT", "US", "SQ"])
def test_encapsulated_document_with_a_non_byte_vr_is_refused(ours, tmp_path, vr, value):
    path = with_element(ours, tmp_path / "doc.dcm", 0x00420011, vr, value)
    reason = refused(path)
    assert reason == (f"Encapsulated Document (0042,0011) has value representation '{vr}', not OB: it "
                      "does not hold the STL's bytes; the object is damaged")


def test_encapsulated_document_as_ow_or_un_holds_the_same_bytes(ours, tmp_path):
    for vr in ("OW", "UN"):
        path = with_element(ours, tmp_path / f"{vr}.dcm", 0x00420011, vr, STL)
        assert bytes(read_encapsulated_model(path).stl) == STL


@pytest.mark.parametrize("vr, value, problem", [
    ("UL", [len(STL), len(STL)], "Encapsulated Document Length (0042,0015) has 2 values, not one"),
    ("FD", float("nan"), "Encapsulated Document Length (0042,0015) is 'nan', not a length in bytes"),
    ("DS", "NaN", "Encapsulated Document Length (0042,0015) is 'NaN', not a length in bytes"),
    ("LO", "abc", "Encapsulated Document Length (0042,0015) is 'abc', not a length in bytes"),
    ("UL", 100, f"Encapsulated Document Length (0042,0015) says 100 bytes but the document holds a binary "
                f"STL of {len(STL)} bytes"),
    ("UL", len(STL) + 2, f"Encapsulated Document Length (0042,0015) says {len(STL) + 2} bytes but the "
                         f"document holds a binary STL of {len(STL)} bytes"),
], ids=["two-values", "NaN-FD", "NaN-DS", "text", "too-short", "too-long"])
def test_unusable_document_length_is_reported_and_the_stl_read_by_its_own_count(ours, tmp_path, vr, value, problem):
    """Supplement 205: the document is a binary STL, whose size its triangle count states;
    a length that is not one number, or another number, is reported, not trusted."""
    model = read_encapsulated_model(with_element(ours, tmp_path / "length.dcm", 0x00420015, vr, value))
    assert bytes(model.stl) == STL
    assert [p for p in model.problems if p.startswith(problem)], model.problems


def test_document_length_that_cuts_trailing_bytes_is_honoured(tmp_path):
    """Another producer's document with bytes after the STL, which its length excludes."""
    path = _written_by_others(tmp_path / "tail.dcm", STL + b"\0\0\0\0", ("mm", "UCUM", "mm"), length=len(STL))
    model = read_encapsulated_model(path)
    assert bytes(model.stl) == STL and model.problems == []


def test_a_stl_that_its_length_cuts_short_is_invalid(tmp_path):
    path = _written_by_others(tmp_path / "short.dcm", STL[:-50], ("mm", "UCUM", "mm"), length=len(STL) - 50)
    reason = refused(path, StlFormatError)
    assert reason.startswith("encapsulated STL is invalid: truncated")


@pytest.mark.parametrize("vr, value", [("LO", "mm"), ("CS", ["mm", "UCUM"]), ("FD", float("nan")), ("OB", b"mm")],
                         ids=["LO", "CS-two-values", "FD-NaN", "OB"])
def test_units_sequence_with_a_wrong_vr_leaves_the_units_unknown(ours, tmp_path, vr, value):
    model = read_encapsulated_model(with_element(ours, tmp_path / "units.dcm", 0x004008EA, vr, value))
    assert model.units is None
    assert model.units_problem.startswith(
        "the object's units cannot be read (Measurement Units Code Sequence (0040,08EA) is not a readable sequence")
    with pytest.raises(NotEncapsulatedSTLError, match="give the units explicitly"):
        model.triangles_mm()
    np.testing.assert_allclose(model.triangles_mm(assume_units="mm"), CUBE)


@pytest.mark.parametrize("tag, vr, value, attribute, problem", [
    (0x00687003, "LO", "planning", "usage", "Model Usage Code Sequence (0068,7003) is not a readable sequence"),
    (0x0062000D, "LO", "red", "color", "Recommended Display CIELab Value (0062,000D) is 'red', not three integers"),
    (0x0062000D, "US", [1, 2], "color", "Recommended Display CIELab Value (0062,000D) is '[1, 2]', not three"),
    (0x0062000D, "FD", [float("nan"), 0.0, 0.0], "color", "Recommended Display CIELab Value (0062,000D) is"),
    (0x0066000C, "FD", float("nan"), "opacity", "Recommended Presentation Opacity (0066,000C) is 'nan', not a number in 0..1"),
    (0x0066000C, "FL", 2.0, "opacity", "Recommended Presentation Opacity (0066,000C) is '2.0', not a number in 0..1"),
    (0x0066000C, "LO", "half", "opacity", "Recommended Presentation Opacity (0066,000C) is 'half'"),
    (0x00420013, "LO", "1.2.3", "source_instance_uids", "Source Instance Sequence (0042,0013) is not a readable sequence"),
    (0x00080018, "SQ", [], "sop_instance_uid", "SOP Instance UID (0008,0018) is not text"),
], ids=["usage-text", "color-text", "color-two", "color-NaN", "opacity-NaN", "opacity-2", "opacity-text",
        "sources-text", "uid-sequence"])
def test_unusable_attributes_read_as_none_and_are_reported(ours, tmp_path, tag, vr, value, attribute, problem):
    model = read_encapsulated_model(with_element(ours, tmp_path / "attr.dcm", tag, vr, value))
    assert getattr(model, attribute) in (None, [])
    assert [p for p in model.problems if p.startswith(problem)], model.problems
    assert bytes(model.stl) == STL


def test_a_damaged_sop_class_uid_is_named_without_warnings(ours):
    data = bytearray(ours.read_bytes())
    offset = data.index(b"1.2.840.10008.5.1.4.1.1.104.3", 200)
    data[offset + 7] = 0xFD
    ours.write_bytes(bytes(data))
    assert refused(ours).startswith("not an Encapsulated STL or Encapsulated OBJ object (SOP Class '1.2.840")



def test_a_deflate_bomb_is_refused_while_inflating(ours, tmp_path):
    """80 MB of zeros deflated to 80 kB: refused at 64 MB (64 times the file, at least
    64 MB), long before pydicom would inflate the whole of it."""
    import io
    import zlib

    from pydicom.filewriter import write_file_meta_info

    meta = pydicom.dcmread(ours).file_meta
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    header = io.BytesIO()
    write_file_meta_info(header, meta)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = b"\0" * (1 << 20)
    body = b"".join(deflater.compress(zeros) for _ in range(80)) + deflater.flush()
    bomb = tmp_path / "bomb.dcm"
    bomb.write_bytes(b"\0" * 128 + b"DICM" + header.getvalue() + body)
    reason, peak = refused_measuring_memory(bomb)
    assert reason.startswith(f"the deflated data set inflates to more than {64 * 1024 * 1024} bytes")
    assert peak < 100 * 1024 * 1024, peak
