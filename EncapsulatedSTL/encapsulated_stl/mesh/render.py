"""Pictures of models, rendered offscreen with VTK: the icon every object carries, the
``preview`` and ``compare`` pictures and the demo's.

The views are fixed (:data:`VIEWS`), so pictures of the same mesh are comparable and
identical.  The standard one is **anterior**, in patient orientation: the camera
looks from the patient's front (−P in LPS) towards the back, head up (+S), with a
parallel projection fitted to the meshes' bounds; the patient's right is on the
picture's left, as when facing the patient.  A light sits at the camera.

Where VTK renders:

- with a display (``DISPLAY`` or ``WAYLAND_DISPLAY``, or Windows and macOS, or in
  Slicer): the platform's own window, never shown (offscreen rendering);
- with none, as on a server: EGL, else OSMesa, whichever this VTK was built with
  and the machine has (Mesa's software renderer needs no GPU);
- neither: :class:`RenderingUnavailable`, whose message says what to install.  The
  libraries are looked for before VTK is asked, because VTK ends the process when
  it opens a library that is not there.

VTK's own warnings (an X server that does not answer, before its fallback) are
silenced while it renders, and restored after.
"""

from __future__ import annotations

import ctypes.util
import dataclasses
import importlib
import os
import struct
import sys
import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import EncapsulatedSTLError
from ..files import release_freed_memory

#: Colour of a model that names none: bone white (the colour of Slicer's bone).
MODEL_COLOR = (0.945, 0.839, 0.569)
BACKGROUND = (0.0, 0.0, 0.0)
#: The icon's size: the Icon Image Key Definition makes readers that show icons show
#: 64 x 64, and lets them ignore larger ones (PS3.3 F.7, applied by C.7.6.1.1.6).
ICON_SIZE = 64
#: Each icon pixel is the mean of this many rendered pixels on a side (smooth edges).
ICON_SUPERSAMPLING = 4
#: The largest ``preview --size``: 64 megapixels of framebuffer.
LARGEST_SIZE = 8192
#: The views, each as the camera's direction of view and its up, in LPS: ``anterior``
#: looks from the patient's front to the back (the patient's right on the picture's
#: left), ``left`` from the patient's left side (anterior on the picture's left).
VIEWS = {"anterior": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)), "left": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0))}
#: Margin around the fitted bounds, as a fraction of their larger side.
MARGIN = 0.04
#: The most the triangles may cover the picture over, summed (their projected areas
#: over the picture's): a surface model, even a lattice, covers it a few times to a few
#: dozen; a triangle soup of 2 million random triangles 200,000 times, which software
#: rendering takes minutes to draw.
DEEPEST_OVERDRAW = 1000.0


class CannotDraw(EncapsulatedSTLError):
    """A picture that cannot be drawn here, or not in reasonable time."""


class RenderingUnavailable(CannotDraw):
    """This machine has no way for VTK to render: no display, EGL or OSMesa."""


@dataclass(frozen=True)
class Layer:
    """One mesh in a picture.

    Attributes
    ----------
    triangles:
        ``(n, 3, 3)`` vertex coordinates, patient LPS in mm.
    color:
        RGB in 0..1.
    opacity:
        0..1; below 1 the layer is drawn see-through.
    scalars:
        Optional ``(n, 3)`` values at the triangles' corners (distances in mm, say),
        coloured through the :class:`Scale`'s colour bar (blue at its low end, through
        green and yellow, red at its high end and beyond) instead of ``color``.
    """

    triangles: np.ndarray
    color: tuple[float, float, float] = MODEL_COLOR
    opacity: float = 1.0
    scalars: np.ndarray | None = None


@dataclass(frozen=True)
class Outline:
    """Lines in a picture: ``(m, 2, 3)`` segments, patient LPS in mm, drawn over the
    surfaces they lie on."""

    segments: np.ndarray
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Scale:
    """A colour bar beside the picture: what :attr:`Layer.scalars` mean."""

    title: str
    low: float
    high: float


@dataclass(frozen=True)
class Label:
    """A line of text in a corner of the picture, in a layer's colour."""

    text: str
    color: tuple[float, float, float]


def check_size(size) -> int:
    """``size`` as a picture side in pixels, or :class:`EncapsulatedSTLError`."""
    try:
        value = int(size)
    except (TypeError, ValueError):
        raise EncapsulatedSTLError(f"the picture size must be a whole number of pixels, not {size!r}") from None
    if value != size or not 16 <= value <= LARGEST_SIZE:
        raise EncapsulatedSTLError(f"the picture size must be 16 to {LARGEST_SIZE} pixels, not {size!r}")
    return value


def render(layers: list[Layer | Outline], size: int, *, view: str = "anterior", scale: Scale | None = None,
           labels: tuple[Label, ...] = ()) -> np.ndarray:
    """A view of ``layers`` (:data:`VIEWS`; see the module) as ``(size, size, 3)`` uint8
    RGB, first row at the top.

    Raises
    ------
    RenderingUnavailable
        When VTK cannot render on this machine.
    CannotDraw
        When the triangles pile up more than :data:`DEEPEST_OVERDRAW` times.
    EncapsulatedSTLError
        For a size or view out of range, no triangle, or a coordinate that is not finite.
    """
    size = check_size(size)
    release_freed_memory()  # what came before (meshing) gives its freed heap back first
    if view not in VIEWS:
        raise EncapsulatedSTLError(f"the view must be one of {', '.join(VIEWS)}, not {view!r}")
    low, high = _bounds(layers)
    overdraw = _overdraw(layers, low, high, view)
    if overdraw > DEEPEST_OVERDRAW:
        raise CannotDraw(f"the triangles cover the picture {overdraw:,.0f} times over (a surface "
                         f"covers it at most a few dozen times): not a surface model, and drawing "
                         "it would take minutes")
    with _quiet_vtk():
        window = _offscreen_window()
        try:
            return _draw(window, layers, size, low, high, view, scale, labels)
        finally:
            window.Finalize()


def icon_pixels(triangles: np.ndarray) -> np.ndarray:
    """The ``(64, 64)`` uint8 monochrome icon of a model: its anterior view rendered at
    four times the size, in grey levels, each icon pixel the mean of 4 x 4."""
    fine = ICON_SIZE * ICON_SUPERSAMPLING
    rgb = render([Layer(triangles, color=(1.0, 1.0, 1.0))], fine).astype(np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 luma
    blocks = grey.reshape(ICON_SIZE, ICON_SUPERSAMPLING, ICON_SIZE, ICON_SUPERSAMPLING)
    return np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """``(rows, columns, 3)`` uint8 RGB as a PNG file, with no metadata and no time
    stamp, so the same picture gives the same bytes."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    rows, columns = rgb.shape[:2]
    scanlines = np.zeros((rows, 1 + 3 * columns), np.uint8)  # filter type 0 (none) per row
    scanlines[:, 1:] = rgb.reshape(rows, -1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", columns, rows, 8, 2, 0, 0, 0)  # 8-bit RGB, not interlaced
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 9)) + chunk(b"IEND", b""))


#: Triangles per block where every triangle is looked at: bounded memory.
BLOCK = 1 << 15
#: Triangles VTK draws at once in a picture of one opaque layer (:func:`_parts`).
DRAWN_AT_ONCE = 1 << 16


def _bounds(layers: list[Layer | Outline]) -> tuple[np.ndarray, np.ndarray]:
    """The layers' bounds (LPS mm), taken in blocks; a coordinate that is not a finite
    number is refused (the readers refuse such STL before drawing)."""
    lows, highs = [], []
    for layer in layers:
        shape = np.asarray(layer.segments if isinstance(layer, Outline) else layer.triangles)
        for start in range(0, len(shape), BLOCK):
            # one contiguous row per axis: numpy reduces those ten times faster than columns
            axes = np.ascontiguousarray(shape[start:start + BLOCK]).reshape(-1, 3).T.copy()
            lows.append(axes.min(axis=1))
            highs.append(axes.max(axis=1))
    if not lows:
        raise EncapsulatedSTLError("the model has no triangle to draw")
    low, high = np.min(lows, axis=0).astype(np.float64), np.max(highs, axis=0).astype(np.float64)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise EncapsulatedSTLError("the model has a coordinate that is not a finite number: nothing to draw")
    return low, high


def _overdraw(layers, low, high, view: str) -> float:
    """How many times over the layers' triangles cover the picture: the sum of their areas
    projected on the view plane, over the plane's fitted square."""
    direction = np.array(VIEWS[view][0])
    half = _half_height(low, high, view, 1.0)
    total = 0.0
    for layer in layers:
        if isinstance(layer, Layer):
            for start in range(0, len(layer.triangles), BLOCK):
                block = np.asarray(layer.triangles[start:start + BLOCK], np.float64)
                normals = np.cross(block[:, 1] - block[:, 0], block[:, 2] - block[:, 0])
                total += float(np.abs(normals @ direction).sum()) / 2.0
    return total / (2.0 * half) ** 2


def _half_height(low, high, view: str, width_share: float) -> float:
    """Half the height of the fitted view in mm (VTK's parallel scale): the bounds'
    larger side across the picture, with the margin."""
    direction, up = (np.array(v, np.float64) for v in VIEWS[view])
    right = np.cross(direction, up)
    extent = np.maximum(high - low, 1e-6)
    across, tall = float(np.abs(right) @ extent), float(np.abs(up) @ extent)
    return max(tall, across / width_share) / 2.0 * (1.0 + 2.0 * MARGIN)


class _quiet_vtk:
    """VTK's warnings and errors off while rendering (the X server it tries before
    falling back to EGL), as they were after."""

    def __enter__(self):
        from vtkmodules.vtkCommonCore import vtkObject

        self.shown = vtkObject.GetGlobalWarningDisplay()
        vtkObject.GlobalWarningDisplayOff()
        return self

    def __exit__(self, *exc):
        from vtkmodules.vtkCommonCore import vtkObject

        vtkObject.SetGlobalWarningDisplay(self.shown)
        return False


def _has_display() -> bool:
    return sys.platform in ("win32", "darwin") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _offscreen_window():
    import vtkmodules.vtkRenderingOpenGL2 as opengl  # registers VTK's OpenGL classes
    from vtkmodules.vtkRenderingCore import vtkRenderWindow

    if _has_display():
        window = vtkRenderWindow()
    elif hasattr(opengl, "vtkEGLRenderWindow") and ctypes.util.find_library("EGL"):
        window = opengl.vtkEGLRenderWindow()
    elif hasattr(opengl, "vtkOSOpenGLRenderWindow") and ctypes.util.find_library("OSMesa"):
        window = opengl.vtkOSOpenGLRenderWindow()
    else:
        raise RenderingUnavailable(
            "cannot draw the model: there is no display, and this VTK "
            f"({vtk_version()}) finds neither EGL nor OSMesa; install Mesa's libegl1 (or "
            "libosmesa6), with a VTK built with them (9.6's wheels are), or run with a display")
    window.SetOffScreenRendering(1)
    return window


def vtk_version() -> str:
    """The version of the VTK that renders."""
    from vtkmodules.vtkCommonCore import vtkVersion

    return vtkVersion.GetVTKVersion()


def _draw(window, layers, size, low, high, view, scale, labels) -> np.ndarray:
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkRenderingCore import vtkRenderer, vtkWindowToImageFilter

    renderer = vtkRenderer()
    renderer.SetBackground(*BACKGROUND)
    renderer.SetUseDepthPeeling(True)  # see-through layers in the right order
    window.AddRenderer(renderer)
    window.SetSize(size, size)
    window.SetMultiSamples(0)  # the same pixels on every OpenGL
    lookup = _lookup_table(scale) if scale is not None else None
    _camera(renderer, low, high, view, width_share=0.8 if scale is not None else 1.0)
    if scale is not None or labels:
        importlib.import_module("vtkmodules.vtkRenderingFreeType")  # VTK's text renderer, registered
    if scale is not None:
        renderer.AddViewProp(_scale_bar(lookup, scale, size))
    for row, label in enumerate(labels):
        renderer.AddViewProp(_label(label, row, size))
    parts = _parts(layers)
    for number, part in enumerate(parts):
        actors, keep = [], []  # keep: the numpy arrays VTK reads without a copy, until drawn
        for layer in part:
            actor, arrays = _outline_actor(layer) if isinstance(layer, Outline) else _actor(layer, lookup)
            actors.append(actor)
            keep.append(arrays)
            renderer.AddActor(actor)
        if number == 1:  # the next parts are drawn over the first, depth tested against it
            renderer.SetPreserveColorBuffer(True)
            renderer.SetPreserveDepthBuffer(True)
        window.Render()
        if number < len(parts) - 1:  # its buffers (VTK's and OpenGL's copies) go with it; the
            for actor in actors:  # last part stays for the grab below, which draws it again
                renderer.RemoveActor(actor)
            del actors, keep
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    pixels = vtk_to_numpy(grab.GetOutput().GetPointData().GetScalars()).reshape(size, size, 3)
    return np.ascontiguousarray(pixels[::-1])  # VTK's first row is the bottom one


def _parts(layers):
    """The layers as drawn one part after another: one opaque layer of one colour (an icon,
    a preview) in blocks of :data:`DRAWN_AT_ONCE` triangles, so that VTK and OpenGL hold
    copies of one block at a time, not of the whole mesh; anything else at once (see-
    through layers are sorted against each other by depth peeling)."""
    if len(layers) == 1 and isinstance(layers[0], Layer) and layers[0].opacity >= 1.0 and layers[0].scalars is None:
        layer = layers[0]
        return [[dataclasses.replace(layer, triangles=layer.triangles[start:start + DRAWN_AT_ONCE])]
                for start in range(0, len(layer.triangles), DRAWN_AT_ONCE)]
    return [layers]


def _mapper(corners: np.ndarray, per_cell: int):
    """A mapper of cells of ``per_cell`` consecutive ``corners`` (3: triangles, 2: lines),
    and the numpy arrays VTK reads without a copy."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
    from vtkmodules.vtkRenderingCore import vtkPolyDataMapper

    corners = np.ascontiguousarray(corners.reshape(-1, 3), dtype=np.float32)
    # 32-bit cell storage (half the memory of VTK's 64-bit ids) while the indices fit
    index = np.int32 if len(corners) < np.iinfo(np.int32).max else np.int64
    offsets = np.arange(0, len(corners) + 1, per_cell, dtype=index)
    connectivity = np.arange(len(corners), dtype=index)
    cells = vtkCellArray()
    cells.SetData(numpy_to_vtk(offsets, deep=False), numpy_to_vtk(connectivity, deep=False))
    points = vtkPoints()
    points.SetData(numpy_to_vtk(corners, deep=False))
    polydata = vtkPolyData()
    polydata.SetPoints(points)
    if per_cell == 3:
        polydata.SetPolys(cells)
    else:
        polydata.SetLines(cells)
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(polydata)
    mapper.ScalarVisibilityOff()
    return mapper, [corners, offsets, connectivity]


def _actor(layer: Layer, lookup):
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkRenderingCore import vtkActor

    scalars = layer.scalars
    mapper, arrays = _mapper(np.asarray(layer.triangles), 3)
    if scalars is not None and lookup is not None:
        values = np.ascontiguousarray(np.asarray(scalars, np.float32).reshape(-1))
        arrays.append(values)
        mapper.GetInput().GetPointData().SetScalars(numpy_to_vtk(values, deep=False))
        mapper.ScalarVisibilityOn()
        mapper.SetLookupTable(lookup)
        mapper.UseLookupTableScalarRangeOn()
        mapper.InterpolateScalarsBeforeMappingOn()
    actor = vtkActor()
    actor.SetMapper(mapper)
    properties = actor.GetProperty()
    properties.SetColor(*layer.color)
    properties.SetOpacity(layer.opacity)
    properties.SetAmbient(0.15)
    properties.SetDiffuse(0.85)
    properties.SetSpecular(0.0)
    return actor, arrays


def _outline_actor(outline: Outline):
    from vtkmodules.vtkRenderingCore import vtkActor

    mapper, arrays = _mapper(np.asarray(outline.segments), 2)
    # Lines on a surface win the depth test against it, as VTK draws edges on faces.
    mapper.SetRelativeCoincidentTopologyLineOffsetParameters(0.0, -66000.0)
    actor = vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*outline.color)
    actor.GetProperty().LightingOff()
    actor.GetProperty().SetLineWidth(1.0)
    return actor, arrays


def _lookup_table(scale: Scale):
    from vtkmodules.vtkCommonCore import vtkLookupTable

    lookup = vtkLookupTable()
    lookup.SetHueRange(2.0 / 3.0, 0.0)  # blue to red
    lookup.SetSaturationRange(1.0, 1.0)
    lookup.SetValueRange(1.0, 1.0)
    lookup.SetNumberOfTableValues(256)
    lookup.SetTableRange(scale.low, scale.high if scale.high > scale.low else scale.low + 1e-6)
    lookup.Build()
    return lookup


def _camera(renderer, low, high, view: str, width_share: float) -> None:
    direction, up = (np.array(v, np.float64) for v in VIEWS[view])
    right = np.cross(direction, up)
    center = (low + high) / 2.0
    extent = np.maximum(high - low, 1e-6)
    # The picture is square, and its width is shared with a colour bar when there is
    # one: the model then sits left of it.
    half = _half_height(low, high, view, width_share)
    focus = center + right * (1.0 - width_share) * half
    distance = 2.0 * float(extent.max()) + 1.0
    camera = renderer.GetActiveCamera()
    camera.ParallelProjectionOn()
    camera.SetFocalPoint(*focus)
    camera.SetPosition(*(focus - direction * distance))
    camera.SetViewUp(*up)
    camera.SetParallelScale(half)
    camera.SetClippingRange(1e-3 * distance, 2.0 * distance + float(np.abs(direction) @ extent))
    renderer.AddLight(_headlight())
    renderer.AutomaticLightCreationOff()


def _headlight():
    from vtkmodules.vtkRenderingCore import vtkLight

    light = vtkLight()
    light.SetLightTypeToHeadlight()
    light.SetIntensity(1.0)
    return light


def _text_properties(properties, size: int, color) -> None:
    properties.SetFontFamilyToArial()
    properties.SetFontSize(max(10, size // 32))
    properties.SetColor(*color)
    properties.BoldOff()
    properties.ItalicOff()
    properties.ShadowOff()


def _scale_bar(lookup, scale: Scale, size: int):
    from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor

    bar = vtkScalarBarActor()
    bar.SetLookupTable(lookup)
    bar.SetTitle(scale.title)
    bar.SetNumberOfLabels(5)
    bar.SetLabelFormat("%.2f")
    bar.SetMaximumWidthInPixels(size // 5)
    bar.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    bar.GetPositionCoordinate().SetValue(0.82, 0.08)
    bar.SetWidth(0.16)
    bar.SetHeight(0.84)
    bar.UnconstrainedFontSizeOn()
    for properties in (bar.GetTitleTextProperty(), bar.GetLabelTextProperty()):
        _text_properties(properties, size, (1.0, 1.0, 1.0))
    return bar


def _label(label: Label, row: int, size: int):
    from vtkmodules.vtkRenderingCore import vtkTextActor

    text = vtkTextActor()
    text.SetInput(label.text)
    _text_properties(text.GetTextProperty(), size, label.color)
    line = max(10, size // 32) * 1.4
    text.SetDisplayPosition(int(size * 0.02), int(size - (row + 1) * line - size * 0.01))
    return text
