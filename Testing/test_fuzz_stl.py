"""Fuzzing the STL readers: any bytes give a valid mesh or StlFormatError, nothing else.

The property, for ``parse_stl``, ``binary_stl_for_encapsulation`` and ``read_stl_file``:
either a mesh with at least one triangle, as many triangles as the data declares
(binary) or holds facets (ASCII), every value finite and every coordinate within
``COORDINATE_LIMIT``; or a StlFormatError whose message is one line naming the file.
No other exception, no numpy warning.  Text built from the grammar must be read with
exactly the values written.  Examples per test: FUZZ_EXAMPLES (conftest.py).
"""

from __future__ import annotations

import re
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from encapsulated_stl.errors import StlFormatError
from text_mutations import mutated_text
from encapsulated_stl.stl.format import (
    COORDINATE_LIMIT,
    binary_stl_for_encapsulation,
    parse_binary_stl,
    parse_stl,
    read_stl_file,
)
from stl_samples import ascii_stl_by_hand, binary_stl_by_hand, cube_triangles

BINARY = binary_stl_by_hand(cube_triangles(25.0, origin=(-3.0, 4.0, 1000.0)), header=b"solid fuzz")
ASCII = ascii_stl_by_hand(cube_triangles(25.0, origin=(-3.0, 4.0, 1000.0)))
FACET_TOKEN = re.compile(rb"(?<!\S)facet(?!\S)", re.IGNORECASE)


def outcome(data: bytes):
    """The mesh ``parse_stl`` makes of ``data`` after checking it, or ``None`` for StlFormatError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            mesh = parse_stl(data, "fuzz.stl")
        except StlFormatError as error:
            assert_one_line_naming_the_file(error)
            return None
    count = mesh.triangle_count
    assert count >= 1
    assert mesh.triangles.shape == (count, 3, 3) and mesh.triangles.dtype == np.float32
    assert mesh.normals.shape == (count, 3) and mesh.attributes.shape == (count,)
    assert np.isfinite(mesh.triangles).all() and np.isfinite(mesh.normals).all()
    assert np.abs(mesh.triangles).max() <= COORDINATE_LIMIT
    if mesh.header is None:
        assert count == len(FACET_TOKEN.findall(between_solid_and_endsolid(data)))
    else:
        assert count == struct.unpack_from("<I", data, 80)[0] and len(data) == 84 + 50 * count
    return mesh


def between_solid_and_endsolid(data: bytes) -> bytes:
    """ASCII STL text without its first line and the 'endsolid' on its last (with names)."""
    text = data.strip()
    first = re.search(rb"[\r\n]", text)
    body = text[first.end():] if first else b""
    last_line = max(body.rfind(b"\n"), body.rfind(b"\r")) + 1
    end = re.compile(rb"(?<!\S)endsolid(?!\S)", re.IGNORECASE).search(body, last_line)
    return body[:end.start()] if end else body


def assert_one_line_naming_the_file(error: StlFormatError) -> None:
    message = str(error)
    assert message.startswith("fuzz.stl: ") and len(message) > len("fuzz.stl: ")
    assert "\n" not in message and "\r" not in message


def check_every_reader(data: bytes) -> None:
    mesh = outcome(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            stored, converted = binary_stl_for_encapsulation(data, "fuzz.stl")
        except StlFormatError as error:
            assert_one_line_naming_the_file(error)
            assert mesh is None, "a readable STL must be accepted for encapsulation"
            stored = None
    if stored is not None:
        if converted:
            assert mesh is not None and mesh.header is None
            np.testing.assert_array_equal(parse_binary_stl(stored).triangles, mesh.triangles)
        else:
            assert stored is data  # binary is kept byte for byte; its values are checked later
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.stl"
        path.write_bytes(data)
        assert bytes(read_stl_file(path)) == data


# --- arbitrary and mutated bytes ----------------------------------------------------


@given(st.binary(max_size=700))
@example(b"")
@example(b"\0" * 84).via("binary with zero triangles")
@example(b"\0" * 80 + struct.pack("<I", 3) + b"\0" * 150).via("all-zero records: degenerate")
def test_arbitrary_bytes(data):
    check_every_reader(data)


@given(st.binary(max_size=400))
@example(b"\0" * 200).via("binary data behind 'solid'")
@example(b"x\nfacet normal 0 0 1 outer loop vertex 0 0 0 vertex 1 0 0 vertex 0 1 0 endloop endfacet\nendsolid")
def test_arbitrary_bytes_after_solid(tail):
    check_every_reader(b"solid " + tail)


SPECIAL_FLOATS = [np.nan, np.inf, -np.inf, 3.4e38, -2e9, 1.0000001e9, 1e-45, -0.0, 0.0]


@st.composite
def mutated_binary(draw):
    data = bytearray(BINARY)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["byte", "float", "count", "cut", "append"]))
        if kind == "byte" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif kind == "float" and len(data) >= 134:
            offset = 84 + 50 * draw(st.integers(0, (len(data) - 134) // 50)) + 4 * draw(st.integers(0, 11))
            data[offset:offset + 4] = struct.pack("<f", draw(st.sampled_from(SPECIAL_FLOATS)))
        elif kind == "count" and len(data) >= 84:
            data[80:84] = struct.pack("<I", draw(st.sampled_from([0, 1, 11, 13, 2**31, 2**32 - 1])))
        elif kind == "cut":
            del data[draw(st.integers(0, len(data))):]
        elif kind == "append":
            data += draw(st.binary(min_size=1, max_size=60))
    return bytes(data)


@given(mutated_binary())
@example(BINARY[:84 + 50 * 5 + 4] + struct.pack("<2f", np.inf, -np.inf) + BINARY[84 + 50 * 5 + 12:]).via(
    "inf and -inf in one file: the one-pass sum warned"
)
def test_mutated_binary_stl(data):
    check_every_reader(data)


TOKENS = [
    b"solid", b"endsolid", b"facet", b"normal", b"outer", b"loop", b"vertex", b"endloop", b"endfacet",
    b"FACET", b"Vertex", b"0", b"1", b"-2.5", b"1e3", b".5", b"5.", b"+1", b"1_000", b"1.0.0", b"0x10",
    b"nan", b"inf", b"-Infinity", b"1e999", b"2e9", b"1e39", b"1e-400", b"e5", b"-", b".", b"\xff", b"#",
]
SPACES = [b" ", b"\t", b"\n", b"\r\n", b"\r", b"  \n\n ", b"\x0b", b"\x0c"]


def mutated_ascii():
    return mutated_text(ASCII, TOKENS, SPACES)


@given(mutated_ascii())
@example(ASCII.replace(b"solid part", b"solid facet")).via("a solid named 'facet'")
@example(ASCII.replace(b"endsolid part", b"endsolid part\nendsolid")).via("two endsolid lines")
@example(ASCII.replace(b"vertex", b"vertex\x0b", 1)).via("vertical tab separates tokens")
def test_mutated_ascii_stl(data):
    check_every_reader(data)


@given(st.lists(st.tuples(st.sampled_from(TOKENS), st.sampled_from(SPACES)), max_size=80),
       st.booleans())
def test_ascii_token_streams(pairs, closed):
    body = b"".join(token + space for token, space in pairs)
    check_every_reader(b"solid stream\n" + body + (b"endsolid stream\n" if closed else b""))


# --- text from the grammar: read exactly as written ---------------------------------


@st.composite
def full_number(draw):
    """A number in full, as some writer might print it: text and the value it means."""
    whole = draw(st.text("0123456789", max_size=4))
    fraction = draw(st.none() | st.text("0123456789", max_size=7))
    if not whole and not fraction:
        whole = "0"
    text = draw(st.sampled_from(["", "+", "-"])) + whole
    if fraction is not None:
        text += "." + fraction
    if draw(st.booleans()):
        text += draw(st.sampled_from("eE")) + draw(st.sampled_from(["", "+", "-"])) + str(draw(st.integers(0, 12)))
    return text


def cased(draw, word: str) -> bytes:
    return draw(st.sampled_from([word, word.upper(), word.capitalize()])).encode()


@st.composite
def grammatical_stl(draw):
    """ASCII STL text from the grammar, and the (n, 12) numbers it holds."""
    count = draw(st.integers(1, 6))
    numbers = [[draw(full_number()) for _ in range(12)] for _ in range(count)]
    gap = st.sampled_from(SPACES)
    words = [cased(draw, "solid") + b" name\n"]
    for row in numbers:
        facet = [cased(draw, "facet"), cased(draw, "normal"), *row[:3], cased(draw, "outer"), cased(draw, "loop")]
        for corner in range(3):
            facet += [cased(draw, "vertex"), *row[3 + 3 * corner:6 + 3 * corner]]
        facet += [cased(draw, "endloop"), cased(draw, "endfacet")]
        words += [(word.encode() if isinstance(word, str) else word) + draw(gap) for word in facet]
    words.append(cased(draw, "endsolid") + draw(st.sampled_from([b"", b" name", b"\n", b"\r\n \n"])))
    values = np.array([[float(value) for value in row] for row in numbers], dtype=np.float64)
    return b"".join(words), values


@given(grammatical_stl())
@example((
    b"solid n\nfacet normal 0 0 1 outer loop vertex 1e9 0 0 vertex 0 1 0 vertex 0 0 1 endloop endfacet endsolid",
    np.array([[0, 0, 1, 1e9, 0, 0, 0, 1, 0, 0, 0, 1]], dtype=np.float64),
)).via("a coordinate at the limit")
def test_grammatical_text_is_read_exactly_or_refused_for_its_values(case):
    text, values = case
    vertices = values[:, 3:]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            mesh = parse_stl(text, "fuzz.stl")
        except StlFormatError as error:
            assert_one_line_naming_the_file(error)
            message = str(error)
            if np.abs(vertices).max() > COORDINATE_LIMIT:
                assert "which is beyond +-1e+09" in message
            elif np.abs(values[:, :3]).max() > np.finfo(np.float32).max:
                assert "does not fit in a 32-bit float" in message
            else:
                corners = vertices.astype(np.float32).astype(np.float64).reshape(-1, 3, 3)
                area = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
                assert not area.any() and "zero area" in message, message
            return
    np.testing.assert_array_equal(mesh.normals, values[:, :3].astype(np.float32))
    np.testing.assert_array_equal(mesh.triangles, vertices.astype(np.float32).reshape(-1, 3, 3))

