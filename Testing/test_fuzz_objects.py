"""Fuzz: truncated and mutated Encapsulated STL objects, ours and other producers'.

Property: :func:`read_encapsulated_model` either reads the object, with every attribute
a caller uses readable and, for a truncated file, exactly what the whole file holds,
or raises the project's own error with a one-line message that starts with the file's
name; never another exception, never a library warning.  An object that is read can be
revised (:func:`~encapsulated_stl.iod.versions.new_version`) or the revision refused in
one line, again with nothing else raised.  The Slicer importer's
``examineForImport`` never raises and never offers an object the core cannot read.

Each failure class this fuzzing found is a named case in test_hostile_objects.py.
"""

from __future__ import annotations

import logging
import random
import struct
import subprocess
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian

from conftest import require_tool
from slicer_harness import qt
from encapsulated_stl.errors import EncapsulatedSTLError
from encapsulated_stl.iod.model import read_encapsulated_model
from encapsulated_stl.iod.versions import new_version
from test_hostile_objects import (
    STL, dcm4che_object, our_object, orthanc_object, rewritten, with_undefined_lengths,
)
from test_read_producers import CUBE, ODD_STL, _written_by_others, ascii_stl

VRS = [b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF",
       b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN",
       b"UR", b"US", b"UT", b"UV"]
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


class Base:
    """A valid object and where its parts lie, for aiming mutations."""

    def __init__(self, path: Path):
        self.path = path
        self.data = path.read_bytes()
        model = read_encapsulated_model(path)
        self.stl = bytes(model.stl)
        self.sources = model.source_instance_uids
        self.units = model.units
        # explicit VR headers: a tag followed by a known VR (nested ones too)
        self.headers = [i for i in range(132, len(self.data) - 8, 2) if self.data[i + 4:i + 6] in VRS]
        document = self.data.find(STL)
        self.document = (document, document + len(STL)) if document > 0 else (132, len(self.data))
        source = self.data.find(b"\x42\x00\x13\x00")
        self.source_sequence = (source, len(self.data)) if source > 0 else self.document
        meta_end = 132
        while self.data[meta_end:meta_end + 2] == b"\x02\x00":
            long = self.data[meta_end + 4:meta_end + 6] in LONG_VRS
            length = struct.unpack_from("<L" if long else "<H", self.data, meta_end + (8 if long else 6))[0]
            meta_end += (12 if long else 8) + length
        self.meta_end = meta_end


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Base]:
    folder = tmp_path_factory.mktemp("bases")
    ours = our_object(folder / "ours.dcm")
    paths = {
        "ours": ours,
        "ours-no-source": our_object(folder / "no-source.dcm", sources=0),
        "undefined-lengths": with_undefined_lengths(ours, folder / "undefined.dcm"),
        "implicit": rewritten(ours, folder / "implicit.dcm", ImplicitVRLittleEndian),
        "deflated": rewritten(ours, folder / "deflated.dcm", DeflatedExplicitVRLittleEndian),
        "orthanc": orthanc_object(folder / "orthanc.dcm"),
        "dcm4che": dcm4che_object(folder / "dcm4che.dcm"),
        # other producers' objects read leniently: ASCII, a stray byte, a generic MIME type
        "ascii": _written_by_others(folder / "ascii.dcm", ascii_stl(CUBE), ("mm", "UCUM", "mm")),
        "odd": _written_by_others(folder / "odd.dcm", ODD_STL, ("mm", "UCUM", "mm")),
        "text-plain": _written_by_others(folder / "plain.dcm", STL, ("mm", "UCUM", "mm"), mime="text/plain"),
    }
    return {name: Base(path) for name, path in paths.items()}


@pytest.fixture(scope="module")
def dcmtk_bases(tmp_path_factory) -> dict[str, Base]:
    """Objects written by the real DCMTK stl2dcm, little and big endian."""
    stl2dcm = require_tool("stl2dcm", "apt-get install dcmtk")
    folder = tmp_path_factory.mktemp("dcmtk")
    (folder / "cube.stl").write_bytes(STL)
    found = {}
    for flag in ("+te", "+ti", "+tb"):
        target = folder / f"dcmtk{flag}.dcm"
        subprocess.run([stl2dcm, "-q", flag, "+t", "Skull", str(folder / "cube.stl"), str(target)],
                       check=True, timeout=60)
        found[f"dcmtk{flag}"] = Base(target)
    return found


def read_all(path: Path):
    """The model with every attribute a caller reads, or the project's error (checked)."""
    try:
        model = read_encapsulated_model(path)
    except EncapsulatedSTLError as error:
        message = str(error)
        assert "\n" not in message and message.startswith(str(path)), message
        return None
    for name in ("units", "units_problem", "problems", "sop_instance_uid", "series_instance_uid",
                 "study_instance_uid", "frame_of_reference_uid", "patient_name", "patient_id", "title",
                 "description", "series_description", "name", "usage", "laterality", "producer", "color",
                 "opacity", "model_group_uid", "source_series", "source_instance_uids", "millimetres_per_unit"):
        getattr(model, name)
    assert all(isinstance(p, str) and "\n" not in p for p in model.problems)
    model.bounds_mm()
    model.triangles_mm(assume_units="mm")
    model.predecessors
    try:  # a new version of whatever could be read: made, or refused in one line
        new_version(STL, [model], "edited", patient_id="P-FUZZ")
    except EncapsulatedSTLError as error:
        assert "\n" not in str(error), str(error)
    return model


def offsets(base: Base):
    """A truncation point from each class: meta, element headers, document, source sequence, the end."""
    size = len(base.data)
    return st.one_of(
        st.integers(0, base.meta_end),
        st.sampled_from(base.headers).flatmap(lambda h: st.integers(h, min(h + 12, size - 1))),
        st.integers(*base.document).map(lambda o: min(o, size - 1)),
        st.integers(base.source_sequence[0], base.source_sequence[1] - 1),
        st.integers(size - 16, size - 1),
    )


def check_truncation(base: Base, path: Path, length: int):
    path.write_bytes(base.data[:length])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = read_all(path)
    if model is not None:
        # only a cut exactly between two trailing optional elements can look whole, and
        # then what is read must be what the whole file holds
        assert bytes(model.stl) == base.stl and model.source_instance_uids == base.sources, length
        assert model.units == base.units


@given(data=st.data())
def test_truncated_objects(bases, tmp_path_factory, data):
    name = data.draw(st.sampled_from(sorted(bases)), label="base")
    base = bases[name]
    length = data.draw(offsets(base), label="length")
    check_truncation(base, tmp_path_factory.mktemp("cut") / f"{name}.dcm", length)


@given(data=st.data())
def test_truncated_dcmtk_objects(dcmtk_bases, tmp_path_factory, data):
    name = data.draw(st.sampled_from(sorted(dcmtk_bases)), label="base")
    base = dcmtk_bases[name]
    check_truncation(base, tmp_path_factory.mktemp("cut") / f"{name}.dcm", data.draw(offsets(base), label="length"))


def mutation(base: Base):
    """Byte flips anywhere after the preamble, a VR swapped, or a length field rewritten."""
    size = len(base.data)
    flips = st.lists(st.tuples(st.integers(128, size - 1), st.integers(0, 255)), min_size=1, max_size=4)
    vr_swap = st.tuples(st.sampled_from(base.headers), st.sampled_from(VRS + [b"\0\0", b"zz"]))
    lengths = st.tuples(st.sampled_from(base.headers), st.sampled_from(
        [0, 1, 2, 3, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFE, 0x7FFFFFFF]) | st.integers(0, 0xFFFFFFFF))
    return st.one_of(flips.map(lambda f: ("flip", f)), vr_swap.map(lambda v: ("vr", v)),
                     lengths.map(lambda v: ("length", v)))


def mutated(base: Base, change) -> bytes:
    kind, detail = change
    data = bytearray(base.data)
    if kind == "flip":
        for offset, value in detail:
            data[offset] = value
    elif kind == "vr":
        offset, vr = detail
        data[offset + 4:offset + 6] = vr
    else:
        offset, value = detail
        if bytes(data[offset + 4:offset + 6]) in LONG_VRS:
            struct.pack_into("<L", data, offset + 8, value)
        else:
            struct.pack_into("<H", data, offset + 6, value & 0xFFFF)
    return bytes(data)


def check_mutation(base: Base, path: Path, change):
    path.write_bytes(mutated(base, change))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_all(path)


@given(data=st.data())
def test_mutated_objects(bases, tmp_path_factory, data):
    name = data.draw(st.sampled_from(sorted(bases)), label="base")
    base = bases[name]
    check_mutation(base, tmp_path_factory.mktemp("mut") / f"{name}.dcm", data.draw(mutation(base), label="change"))


@given(data=st.data())
def test_mutated_dcmtk_objects(dcmtk_bases, tmp_path_factory, data):
    name = data.draw(st.sampled_from(sorted(dcmtk_bases)), label="base")
    base = dcmtk_bases[name]
    check_mutation(base, tmp_path_factory.mktemp("mut") / f"{name}.dcm", data.draw(mutation(base), label="change"))


# -- the Slicer importer -------------------------------------------------------------

#: Damaged objects examined in one call per Slicer release: enough for every mutation
#: kind on every base, few enough to stay within seconds.
SLICER_CASES = 240


def damaged_objects(bases: dict[str, Base], folder: Path) -> list[Path]:
    """A fixed set (seeded) of truncated and mutated copies of every base."""
    rng = random.Random(12)
    names = sorted(bases)
    paths = []
    for number in range(SLICER_CASES):
        base = bases[names[number % len(names)]]
        if number % 3 == 0:
            data = base.data[:rng.randrange(len(base.data))]
        else:
            kind = ("flip", "vr", "length")[number % 3]
            detail = ([(rng.randrange(128, len(base.data)), rng.randrange(256))] if kind == "flip"
                      else (rng.choice(base.headers), rng.choice(VRS)) if kind == "vr"
                      else (rng.choice(base.headers), rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)])))
            data = mutated(base, (kind, detail))
        path = folder / f"{number:03d}.dcm"
        path.write_bytes(data)
        paths.append(path)
    return paths


def indexed(harness, path: Path) -> bool:
    """Whether the DICOM database indexes ``path``, as CTK does for a file it can parse."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's, as the stand-in reads damaged headers
        return bool(harness.database.insert(str(path)))


def readable(path: Path) -> bool:
    try:
        read_encapsulated_model(path)
        return True
    except EncapsulatedSTLError:
        return False


def test_examine_for_import_never_raises_nor_offers_a_damaged_object(harness, bases, tmp_path, caplog):
    folder = tmp_path / "damaged"
    folder.mkdir()
    paths = [p for p in damaged_objects(bases, folder) if indexed(harness, p)]
    assert len(paths) > SLICER_CASES // 2
    plugin = harness.dicom_plugins["DICOMEncapsulatedSTLPlugin"]()
    with caplog.at_level(logging.ERROR), warnings.catch_warnings():
        warnings.simplefilter("error")
        loadables = plugin.examineForImport([[str(p) for p in paths]])
    offered = {f for loadable in loadables for f in loadable.files}
    good = {str(p) for p in paths if readable(p)}
    assert offered <= good
    logged = " ".join(r.getMessage() for r in caplog.records)
    refused = [p for p in paths if str(p) not in good
               and harness.database.fileValue(str(p), "0008,0016") == plugin_sop_class()]
    assert refused, "the fixed set must hold damaged objects the database still files as Encapsulated STL"
    assert all(f"{p} cannot be loaded" in logged for p in refused)


def plugin_sop_class() -> str:
    from DICOMEncapsulatedSTLPlugin import ENCAPSULATED_STL_SOP_CLASS_UID

    return ENCAPSULATED_STL_SOP_CLASS_UID


def test_load_of_an_object_damaged_after_examination_shows_why(harness, tmp_path, caplog):
    path = our_object(tmp_path / "model.dcm")
    harness.database.insert(str(path))
    plugin = harness.dicom_plugins["DICOMEncapsulatedSTLPlugin"]()
    (loadable,) = [l for l in plugin.examineForImport([[str(path)]]) if not l.asSegmentation]
    path.write_bytes(path.read_bytes()[:-1])  # the file changes between Examine and Load
    with caplog.at_level(logging.ERROR):
        assert plugin.load(loadable) is False
    message = f"Could not load the Encapsulated STL object {loadable.name}: {path}: the file ends inside"
    assert any(r.getMessage().startswith(message) for r in caplog.records)
    (shown,) = [s for s in harness.user.shown if s.title == "Encapsulated STL"]
    assert shown.text.startswith(message) and shown.icon == qt.QMessageBox.Critical


def test_fuzz_bases_are_valid(bases):
    """The mutations start from objects that read whole (else every case would pass vacuously)."""
    assert len(bases["ours"].sources) == 5 and bases["ours"].stl == STL
    assert bases["undefined-lengths"].data.count(b"\xfe\xff\xdd\xe0") >= 5


def test_an_attribute_the_model_cannot_use_is_named_in_the_tooltip(harness, tmp_path):
    from test_hostile_objects import with_element

    path = with_element(our_object(tmp_path / "model.dcm"), tmp_path / "red.dcm", 0x0062000D, "LO", "red")
    harness.database.insert(str(path))
    plugin = harness.dicom_plugins["DICOMEncapsulatedSTLPlugin"]()
    (preferred,) = [l for l in plugin.examineForImport([[str(path)]]) if l.selected]
    assert "Recommended Display CIELab Value (0062,000D) is 'red', not three integers" in preferred.tooltip
    assert not preferred.warning  # the model loads as it is, in its default colour
