"""Fuzzing the Wavefront readers: any bytes give a model or ObjFormatError, nothing else.

The property, for ``read_obj``: either a model with at least one triangle, every
coordinate finite, float32 and within ``COORDINATE_LIMIT``, as many vertices as it has
``v`` lines; or an ObjFormatError whose message is one line naming the file.  No other
exception, no numpy warning, and quickly.  ``read_mtl`` likewise; ``document_problem``
never raises.  Text built from the grammar must be read with exactly the values and
corners written, whichever corner forms and indices it uses.  Examples per test:
FUZZ_EXAMPLES (conftest.py).
"""

from __future__ import annotations

import time
import warnings
from unittest import mock

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from encapsulated_stl.errors import ObjFormatError
from encapsulated_stl.obj import format as wavefront
from encapsulated_stl.obj.format import (
    document_problem,
    mtl_document_problem,
    read_mtl,
    read_obj,
)
from encapsulated_stl.stl.format import COORDINATE_LIMIT
from text_mutations import KINDS, mutated_text

OBJ = b"""# a hand-written part
mtllib part.mtl
o part
v 0 0 0
v 10 0 0 1.0
v 10 10 0 0.5 0.5 0.5
v 0 10 0
v 0 0 10
vt 0 0
vt 1 1
vn 0 0 1
g bottom side
usemtl grey
f 1 2 3 4
f 1/1 2/2 5/1
s off
g top
usemtl red
f -1//1 -2//1 -3//1
f 2/1/1 3/2/1 \\
  5/1/1
l 1 2
"""
MTL = b"""newmtl grey
Kd 0.5 0.5 0.5
d 1
newmtl red
Kd 1 0 0
Tr 0.2
map_Kd -s 1 1 1 red.png
"""
SECONDS = 1.0  # for any example: these are a few hundred bytes


def assert_one_line_naming_the_file(error: ObjFormatError, name: str) -> None:
    message = str(error)
    assert message.startswith(f"{name}: ") and len(message) > len(name) + 2
    assert "\n" not in message and "\r" not in message


def outcome(data: bytes):
    """The model ``read_obj`` makes of ``data`` after checking it, or ``None`` for ObjFormatError."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            model = read_obj(data, "fuzz.obj")
        except ObjFormatError as raised:
            assert_one_line_naming_the_file(raised, "fuzz.obj")
            model, error = None, raised
        assert isinstance(document_problem(data, "model/obj"), (str, type(None)))
    assert time.perf_counter() - start < SECONDS
    assert_read_line_by_line_alike(data, model, error if model is None else None)
    if model is None:
        return None
    triangles = model.triangles()
    assert triangles.dtype == np.float32 and triangles.ndim == 3 and triangles.shape[1:] == (3, 3)
    assert len(triangles) >= 1 and all(len(group.triangles) for group in model.groups)
    assert np.isfinite(triangles).all() and np.abs(triangles).max() <= COORDINATE_LIMIT
    assert len({(group.name, group.material) for group in model.groups}) == len(model.groups)
    return model


def assert_read_line_by_line_alike(data: bytes, model, error) -> None:
    """The numpy paths of ``read_obj`` agree with its line-by-line reading: the same
    triangles, or the same message."""
    with mock.patch.object(wavefront, "_faces_at_once", lambda *args: None), \
            mock.patch.object(wavefront, "_vertices", wavefront._vertices_line_by_line):
        try:
            slow = read_obj(data, "fuzz.obj")
        except ObjFormatError as raised:
            assert error is not None and str(raised) == str(error), (raised, error)
            return
    assert error is None, error
    assert [(g.name, g.material) for g in slow.groups] == [(g.name, g.material) for g in model.groups]
    assert np.array_equal(slow.triangles().view(np.uint32), model.triangles().view(np.uint32))


def mtl_outcome(data: bytes):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            materials = read_mtl(data, "fuzz.mtl")
        except ObjFormatError as error:
            assert_one_line_naming_the_file(error, "fuzz.mtl")
            materials = None
        assert isinstance(mtl_document_problem(data), (str, type(None)))
    assert time.perf_counter() - start < SECONDS
    for name, material in (materials or {}).items():
        assert material.name == name
        values = list(material.diffuse or ()) + ([material.opacity] if material.opacity is not None else [])
        assert all(0.0 <= value <= 1.0 for value in values)
    return materials


def test_the_seeds_are_read():
    model = outcome(OBJ)
    assert [(g.name, g.material, len(g.triangles)) for g in model.groups] == [
        ("bottom side", "grey", 3), ("top", "red", 2),
    ]
    assert model.vertex_count == 5
    assert mtl_outcome(MTL)["red"].opacity == 0.8


# --- arbitrary and mutated bytes ----------------------------------------------------


@given(st.binary(max_size=600))
@example(b"")
@example(b"\x00" * 64).via("nothing but padding")
@example(b"f 1 2 3\x00\x00").via("a face and padding, no vertex")
def test_arbitrary_bytes(data):
    outcome(data)
    mtl_outcome(data)


TOKENS = [
    b"v", b"vt", b"vn", b"vp", b"f", b"g", b"o", b"usemtl", b"mtllib", b"s", b"l", b"p", b"curv", b"cstype",
    b"0", b"1", b"-1", b"3", b"-9", b"2.5", b"1e3", b"+1", b".5", b"1_000", b"0x10", b"nan", b"inf", b"1e999",
    b"2e9", b"1/1", b"1//1", b"1/1/1", b"-1/-1/-1", b"1/", b"/1", b"//", b"1///1", b"#", b"\\", b"\xff", b"%20",
]
CHARACTERS = [bytes([c]) for c in b"vf/.-+eEnx0123456789 \n\r#\\"]
SPACES = [b" ", b"\t", b"\n", b"\r\n", b"\r", b"  \n\n ", b"\x0b", b"\x0c", b" \\\n"]


def mutated(seed: bytes):
    # bytes of any value, and characters the numpy paths could misread inside a number or index
    return mutated_text(seed, TOKENS, SPACES, KINDS + ("byte", "character"), CHARACTERS)


@given(mutated(OBJ))
@example(OBJ.replace(b"f 1 2 3 4", b"f 1 2 3 0")).via("index 0")
@example(OBJ.replace(b"f 1 2 3 4", b"f 1 2 3 4 2e9")).via("the vertex mark as an index")
@example(OBJ.replace(b"v 0 0 10", b"v 0 0 2e9")).via("the vertex mark as a coordinate")
@example(OBJ.replace(b"f -1//1", b"f -1/1/1")).via("mixed corner forms")
@example(b"v 0 0\nv 1 0 0 1\nv 0 1 0\nf 1 2 3\n").via("numbers per line that add up to 4 per line")
@example(OBJ.replace(b"v 10 0 0 1.0", b"v 10 0 0 nan")).via("a weight that is no number")
@example(OBJ.replace(b"0.5 0.5 0.5", b"0.v5 0.5 0.5")).via("a 'v' inside a number")
def test_mutated_obj(data):
    outcome(data)


@given(mutated(MTL))
def test_mutated_mtl(data):
    mtl_outcome(data)


@given(st.lists(st.tuples(st.sampled_from(TOKENS), st.sampled_from(SPACES)), max_size=80))
def test_obj_token_streams(pairs):
    outcome(b"v 0 0 0\nv 1 0 0\nv 0 1 0\n" + b"".join(token + space for token, space in pairs))


# --- text from the grammar: read exactly as written ---------------------------------


@st.composite
def grammatical_obj(draw):
    """OBJ text from the grammar, with the triangles it holds (fan-triangulated by hand)."""
    count = draw(st.integers(3, 8))
    points = draw(st.lists(
        st.tuples(*[st.floats(-1e6, 1e6, allow_nan=False, width=32)] * 3), min_size=count, max_size=count
    ))
    lines = [b"v %r %r %r" % point for point in points]
    lines += [b"vt 0.5 0.5", b"vn 0 0 1"]
    forms = st.sampled_from(["%d", "%d/1", "%d//1", "%d/1/1", "%d/-1/-1"])
    form, mixed = draw(forms), draw(st.booleans())  # mixed forms take the line-by-line path
    expected = []
    for _ in range(draw(st.integers(1, 6))):
        corners = draw(st.lists(st.integers(0, count - 1), min_size=3, max_size=6))
        relative = draw(st.booleans())
        words = [
            ((draw(forms) if mixed else form) % (corner - count if relative else corner + 1)).encode()
            for corner in corners
        ]
        lines.append(b"f " + b" ".join(words))
        expected += [[points[corners[0]], points[corners[k]], points[corners[k + 1]]] for k in range(1, len(corners) - 1)]
    end = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    return end.join(lines) + end, np.array(expected, dtype=np.float32)


@given(grammatical_obj())
def test_grammatical_text_is_read_exactly(case):
    text, expected = case
    triangles = outcome(text).triangles()
    np.testing.assert_array_equal(triangles.view(np.uint32), expected.view(np.uint32))
