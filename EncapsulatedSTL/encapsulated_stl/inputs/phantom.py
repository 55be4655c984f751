"""Synthetic CT phantoms of known geometry, written as real DICOM files.

A phantom is a set of spheres and boxes of known centre, size and HU value in
patient LPS millimetres, sampled on a deliberately awkward slice stack: gantry
tilt, uneven table steps or missing slices, an oblique in-plane rotation.  Each
pixel is computed at its exact patient position, so a reader that gets the
geometry right recovers the objects to a small fraction of a voxel and one that
ignores the tilt misplaces them.

Every object's edge is a linear ramp of ``edge_width_mm`` from the background to
its HU value: its surface (signed distance 0) lies exactly where the value
crosses the mid-value ``(background_hu + hu) / 2``, and linear interpolation along
any grid edge shorter than half the ramp finds it exactly (up to the curvature of
the surface).  Used by ``encapsulated-stl demo`` and by the test suite.
"""

from __future__ import annotations

import datetime
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from ..errors import OutputError
from ..iod.file_format import write_file_format
from ..series.slice_geometry import SliceGeometry


@dataclass(frozen=True)
class Sphere:
    """A ball of radius ``radius`` mm around ``centre`` (LPS mm), filled with ``hu``."""

    centre: tuple[float, float, float]
    radius: float
    hu: float = 1000.0

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Distance (mm) of ``(..., 3)`` LPS points from the surface, negative inside."""
        return np.linalg.norm(points - np.asarray(self.centre), axis=-1) - self.radius

    @property
    def volume(self) -> float:
        """Enclosed volume in mm^3."""
        return 4.0 / 3.0 * np.pi * self.radius**3

    def outline(self, step_degrees: float = 30.0, points: int = 72) -> np.ndarray:
        """``(m, 2, 3)`` line segments (LPS mm) of a globe on the true surface: circles
        of latitude about the S axis and meridians, ``step_degrees`` apart."""
        around = np.linspace(0.0, 2.0 * np.pi, points + 1)
        circles = []
        for latitude in np.radians(np.arange(-90.0 + step_degrees, 90.0, step_degrees)):
            circles.append(np.stack([np.cos(latitude) * np.cos(around), np.cos(latitude) * np.sin(around),
                                     np.full_like(around, np.sin(latitude))], -1))
        for longitude in np.radians(np.arange(0.0, 180.0, step_degrees)):
            circles.append(np.stack([np.cos(longitude) * np.cos(around), np.sin(longitude) * np.cos(around),
                                     np.sin(around)], -1))
        polylines = np.asarray(self.centre) + self.radius * np.stack(circles)
        return np.stack([polylines[:, :-1], polylines[:, 1:]], axis=2).reshape(-1, 2, 3)


@dataclass(frozen=True)
class Box:
    """A box aligned with the LPS axes: ``centre`` and edge lengths ``size`` (mm)."""

    centre: tuple[float, float, float]
    size: tuple[float, float, float]
    hu: float = 1000.0

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Exact distance (mm) of ``(..., 3)`` LPS points from the box, negative inside."""
        q = np.abs(points - np.asarray(self.centre)) - np.asarray(self.size) / 2.0
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
        inside = np.minimum(q.max(axis=-1), 0.0)
        return outside + inside

    @property
    def volume(self) -> float:
        return float(np.prod(self.size))

    def outline(self) -> np.ndarray:
        """``(12, 2, 3)`` line segments (LPS mm): the box's edges."""
        corners = np.array([[(i >> axis) & 1 for axis in range(3)] for i in range(8)], np.float64)
        edges = [(i, i | 1 << axis) for i in range(8) for axis in range(3) if not i >> axis & 1]
        points = np.asarray(self.centre) + (corners - 0.5) * np.asarray(self.size)
        return points[np.array(edges)]


#: The demo phantom: a 'skull-like' ball and a block, well inside the field of view.
DEFAULT_OBJECTS = (
    Sphere(centre=(10.0, -5.0, 42.0), radius=15.0, hu=1000.0),
    Box(centre=(-22.0, 20.0, 35.0), size=(16.0, 12.0, 24.0), hu=1000.0),
)


@dataclass
class Phantom:
    """What :func:`write_phantom` wrote.

    Attributes
    ----------
    directory:
        Folder holding every file (the main series and any distractors).
    series_instance_uid:
        UID of the phantom series.
    files:
        The phantom series' files in table order (file names may be shuffled).
    geometry:
        The exact slice geometry of the series in table order.
    objects:
        The spheres and boxes, LPS mm.
    background_hu:
        Value outside every object.
    distractor_series_uids:
        UIDs of the other series written to the same folder (a coarse second
        reconstruction and a localizer series), empty if none.
    """

    directory: Path
    series_instance_uid: str
    files: list[Path]
    geometry: SliceGeometry
    objects: tuple
    background_hu: float
    distractor_series_uids: list[str] = field(default_factory=list)

    def iso_level(self, index: int = 0) -> float:
        """The HU level at which object ``index``'s surface lies exactly."""
        return (self.background_hu + self.objects[index].hu) / 2.0


def phantom_values(
    points: np.ndarray, objects: Sequence, background_hu: float, edge_width_mm: float
) -> np.ndarray:
    """HU at ``(..., 3)`` LPS points: background plus each object's ramped value."""
    values = np.full(points.shape[:-1], float(background_hu), dtype=np.float64)
    for item in objects:
        ramp = np.clip(0.5 - item.signed_distance(points) / edge_width_mm, 0.0, 1.0)
        np.maximum(values, background_hu + (item.hu - background_hu) * ramp, out=values)
    return values


def slice_directions(tilt_degrees: float, rotation_degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column direction cosines (LPS) of a tilted, in-plane rotated slice.

    The gantry tilt turns the column direction about the patient's left axis,
    ``(0, cos t, -sin t)``, as GE's and Philips' tilted series do; the in-plane
    rotation then turns both directions within that plane.
    """
    t = np.radians(tilt_degrees)
    r = np.radians(rotation_degrees)
    row0 = np.array([1.0, 0.0, 0.0])
    column0 = np.array([0.0, np.cos(t), -np.sin(t)])
    row = np.cos(r) * row0 + np.sin(r) * column0
    column = -np.sin(r) * row0 + np.cos(r) * column0
    return row, column


def table_positions(
    slice_count: int = 40,
    spacing_mm: float | Sequence[float] = 2.0,
    missing_slices: Sequence[int] = (),
    start_mm: float = 0.0,
) -> np.ndarray:
    """Table (patient S) positions of the slices, mm.

    ``spacing_mm`` is one step or a list of ``slice_count - 1`` steps; the slices
    whose indices are in ``missing_slices`` are then left out.
    """
    steps = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (slice_count - 1,))
    z = start_mm + np.concatenate([[0.0], np.cumsum(steps)])
    keep = np.ones(slice_count, dtype=bool)
    keep[list(missing_slices)] = False
    return z[keep]


def _base_dataset(study: dict, series_uid: str, series_number: int, description: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.Modality = "CT"
    ds.PatientName = "Phantom^Tilted"
    ds.PatientID = "ESTL-PHANTOM"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study["uid"]
    ds.StudyDate = study["date"]
    ds.StudyTime = study["time"]
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.FrameOfReferenceUID = study["frame"]
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "encapsulated-stl phantom"
    ds.KVP = "120"
    ds.PatientPosition = "HFS"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.RescaleType = "HU"
    return ds


def _write(ds: Dataset, path: Path, transfer_syntax: str) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(transfer_syntax)
    write_file_format(ds, path)


def _slice_pixels(hu: np.ndarray, signed: bool, slope: float, intercept: float) -> np.ndarray:
    stored = np.round((hu - intercept) / slope)
    dtype = np.int16 if signed else np.uint16
    info = np.iinfo(dtype)
    return np.clip(stored, info.min, info.max).astype(dtype)


def write_phantom(
    directory: str | os.PathLike,
    *,
    objects: Sequence = DEFAULT_OBJECTS,
    tilt_degrees: float = 20.0,
    rotation_degrees: float = 0.0,
    slice_count: int = 40,
    spacing_mm: float | Sequence[float] = 2.0,
    missing_slices: Sequence[int] = (),
    table_start_mm: float = 15.0,
    rows: int = 128,
    columns: int = 128,
    pixel_spacing_mm: tuple[float, float] = (0.7, 0.7),
    centre_mm: tuple[float, float] = (0.0, 0.0),
    background_hu: float = 0.0,
    edge_width_mm: float = 8.0,
    noise_hu: float = 0.0,
    seed: int = 0,
    signed: bool = False,
    rescale: tuple[float, float] = (1.0, -1024.0),
    transfer_syntax: str = ExplicitVRLittleEndian,
    gantry_tilt_tag: float | None = None,
    distractor: bool = False,
    shuffle_file_names: bool = False,
) -> Phantom:
    """Write a CT phantom series (one file per slice) to ``directory``.

    Parameters
    ----------
    directory:
        Created if missing; existing phantom files are not removed.
    objects:
        :class:`Sphere` and :class:`Box` instances, LPS mm.
    tilt_degrees:
        Gantry tilt: the slice plane is turned about the patient's left axis while
        the table (ImagePositionPatient) advances along patient S.  Either sign.
    rotation_degrees:
        Oblique in-plane rotation of rows and columns within the slice plane.
    slice_count, spacing_mm, missing_slices, table_start_mm:
        Table positions, see :func:`table_positions` (mm along patient S).
    rows, columns, pixel_spacing_mm, centre_mm:
        Image matrix, PixelSpacing (between rows, between columns; mm) and the
        L and P coordinates (mm) the image centres lie on.
    background_hu, edge_width_mm:
        Value outside the objects and the width of their linear edge ramp (mm).
        It must exceed twice the longest grid edge across a surface (the largest
        table step) for the iso-surface at the mid-value to be exact.
    noise_hu, seed:
        Standard deviation of added Gaussian noise (0: noise-free) and its seed.
    signed, rescale:
        Pixel Representation (int16 or uint16) and (RescaleSlope,
        RescaleIntercept) of the stored values.
    transfer_syntax:
        Transfer syntax UID; compressed syntaxes need the matching pydicom encoder
        (RLE natively, JPEG-LS through pyjpegls, JPEG 2000 through openjpeg; pydicom
        2.4 has RLE only and raises ``NotImplementedError`` for the others).
    gantry_tilt_tag:
        Value written to GantryDetectorTilt (0018,1120), default ``-tilt_degrees``
        (Philips' sign): readers must not trust it.
    distractor:
        Also write, to the same folder, a second CT series of the same study (an
        untilted coarse reconstruction) and a localizer series, plus one localizer
        image inside the phantom series.
    shuffle_file_names:
        Name files with random numbers instead of table order.

    Returns
    -------
    Phantom
        The files, UIDs, exact geometry and objects.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the phantom folder: {error.strerror}", directory) from None
    rng = np.random.default_rng(seed)
    names = random.Random(seed)
    now = datetime.datetime.now()
    study = dict(uid=generate_uid(), frame=generate_uid(), date=now.strftime("%Y%m%d"), time=now.strftime("%H%M%S"))
    series_uid = generate_uid()
    row_dir, column_dir = slice_directions(tilt_degrees, rotation_degrees)
    row_spacing, column_spacing = (float(v) for v in pixel_spacing_mm)
    z = table_positions(slice_count, spacing_mm, missing_slices, table_start_mm)
    half = ((columns - 1) / 2.0) * column_spacing * row_dir + ((rows - 1) / 2.0) * row_spacing * column_dir
    positions = np.array([[centre_mm[0], centre_mm[1], zk] for zk in z]) - half
    geometry = SliceGeometry(positions, row_dir, column_dir, (row_spacing, column_spacing))

    jj, ii = np.mgrid[0:rows, 0:columns].astype(np.float64)
    in_plane = geometry.in_plane_offsets(ii.ravel(), jj.ravel()).reshape(rows, columns, 3)
    slope, intercept = (float(v) for v in rescale)
    tilt_tag = -float(tilt_degrees) if gantry_tilt_tag is None else float(gantry_tilt_tag)

    used_names: set[str] = set()

    def file_name(prefix: str, index: int) -> Path:
        if not shuffle_file_names:
            return directory / f"{prefix}{index:04d}.dcm"
        while True:
            name = f"{names.randrange(10**8):08d}"
            if name not in used_names:
                used_names.add(name)
                return directory / name

    files: list[Path] = []
    for k, position in enumerate(positions):
        hu = phantom_values(position + in_plane, objects, background_hu, edge_width_mm)
        if noise_hu:
            hu += rng.normal(0.0, noise_hu, hu.shape)
        ds = _base_dataset(study, series_uid, 2, f"Phantom tilt {tilt_degrees:g} deg")
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = [float(f"{v:.10f}") for v in (*row_dir, *column_dir)]
        ds.ImagePositionPatient = [float(f"{v:.6f}") for v in position]
        ds.SliceLocation = float(f"{position[2]:.6f}")
        ds.PixelSpacing = [row_spacing, column_spacing]
        ds.SliceThickness = float(np.min(np.diff(z))) if len(z) > 1 else 1.0
        ds.GantryDetectorTilt = tilt_tag
        ds.Rows, ds.Columns = rows, columns
        ds.PixelRepresentation = 1 if signed else 0
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleIntercept = f"{intercept:g}"
        ds.PixelData = _slice_pixels(hu, signed, slope, intercept).tobytes()
        path = file_name("CT", k + 1)
        _write(ds, path, transfer_syntax)
        files.append(path)
    # The geometry a reader sees: values rounded to the digits actually stored.
    geometry = SliceGeometry.from_datasets([pydicom.dcmread(f, stop_before_pixels=True) for f in files])

    distractors: list[str] = []
    if distractor:
        distractors = _write_distractors(
            directory, study, series_uid, objects, background_hu, edge_width_mm, file_name, z
        )
    return Phantom(directory, series_uid, files, geometry, tuple(objects), float(background_hu), distractors)


def _write_distractors(directory, study, series_uid, objects, background_hu, edge_width_mm, file_name, z) -> list[str]:
    """A coarse untilted second series, a localizer series, and a scout in the main series."""
    coarse_uid, scout_uid = generate_uid(), generate_uid()
    size, spacing = 32, 4.0
    jj, ii = np.mgrid[0:size, 0:size].astype(np.float64)
    for k, zk in enumerate(np.arange(z[0], z[-1] + 1e-6, 5.0)):
        origin = np.array([-(size - 1) / 2 * spacing, -(size - 1) / 2 * spacing, zk])
        points = origin + np.stack([ii * spacing, jj * spacing, np.zeros_like(ii)], axis=-1)
        hu = phantom_values(points, objects, background_hu, edge_width_mm)
        ds = _base_dataset(study, coarse_uid, 3, "Phantom coarse untilted")
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.ImagePositionPatient = [float(v) for v in origin]
        ds.PixelSpacing = [spacing, spacing]
        ds.SliceThickness = 5.0
        ds.Rows = ds.Columns = size
        ds.PixelRepresentation = 1
        ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
        ds.PixelData = _slice_pixels(hu, True, 1.0, 0.0).tobytes()
        _write(ds, file_name("COARSE", k + 1), ExplicitVRLittleEndian)
    # A localizer series (scanners put scouts in a series of their own) and one
    # scout that slipped into the phantom series itself; both must be ignored.
    for uid, number, name in ((scout_uid, 1, "SCOUT"), (series_uid, 2, "SCOUTIN")):
        ds = _base_dataset(study, uid, number, "Localizer")
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = 1000
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
        ds.ImagePositionPatient = [-100.0, 0.0, float(z[-1]) + 20.0]
        ds.PixelSpacing = [1.0, 1.0]
        ds.SliceThickness = 1.0
        ds.Rows, ds.Columns = 64, 96
        ds.PixelRepresentation = 1
        ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
        ds.PixelData = np.zeros((64, 96), dtype=np.int16).tobytes()
        _write(ds, file_name(name, 1), ExplicitVRLittleEndian)
    return [coarse_uid, scout_uid]


# -- measuring a mesh against the phantom's objects ---------------------------------


def phantom_picture(objects, model: np.ndarray, misplaced: np.ndarray, size: int = 480) -> np.ndarray:
    """The demo's picture, ``(size, 2 * size, 3)`` uint8 RGB: anterior and left views side
    by side of the phantom's true surfaces (green lines), the model (solid) and where
    a tilt-ignoring reading would have put it (red, see-through); all LPS mm."""
    from ..mesh.render import Label, Layer, Outline, render

    truth = Outline(np.concatenate([item.outline() for item in objects]), color=TRUE_SHAPE_COLOR)
    layers = [Layer(model), Layer(misplaced, color=MISPLACED_COLOR, opacity=0.45), truth]
    labels = (Label("true shape", TRUE_SHAPE_COLOR), Label("our model", (1.0, 1.0, 1.0)),
              Label("tilt-ignoring reading", MISPLACED_COLOR))
    views = [render(layers, size, view=view, labels=labels if view == "anterior" else (Label(f"{view} view", (1.0, 1.0, 1.0)),))
             for view in ("anterior", "left")]
    return np.concatenate(views, axis=1)


#: Colours of the demo picture's true surfaces and misplaced model.
TRUE_SHAPE_COLOR = (0.2, 1.0, 0.3)
MISPLACED_COLOR = (1.0, 0.25, 0.2)


def enclosed_volume(triangles: np.ndarray) -> float:
    """Volume (mm^3) enclosed by closed, outward-oriented ``(n, 3, 3)`` triangles (LPS mm).

    Divergence theorem; negative if the triangles face inwards.
    """
    tri = np.asarray(triangles, dtype=np.float64)
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through ``(n, 3)`` points: centre (3,) and radius, mm."""
    p = np.asarray(points, dtype=np.float64)
    design = np.column_stack([2.0 * p, np.ones(len(p))])
    solution, *_ = np.linalg.lstsq(design, (p * p).sum(axis=1), rcond=None)
    centre = solution[:3]
    return centre, float(np.sqrt(solution[3] + centre @ centre))


@dataclass
class Measurement:
    """An object as found in a mesh, next to its true values (LPS mm).

    ``size`` is the diameter of a sphere or the edge lengths of a box;
    ``surface_rms`` the RMS distance of the object's vertices from its true
    surface (for a box, of the vertices on its faces, away from edges and corners,
    which no marching-cubes surface can make sharp); ``volume`` is enclosed.
    """

    name: str
    true_centre: np.ndarray
    centre: np.ndarray
    true_size: np.ndarray
    size: np.ndarray
    surface_rms: float
    true_volume: float
    volume: float
    triangle_count: int

    @property
    def centre_error(self) -> float:
        return float(np.linalg.norm(self.centre - self.true_centre))

    @property
    def size_error(self) -> float:
        return float(np.abs(self.size - self.true_size).max())

    @property
    def volume_error(self) -> float:
        """Relative error of the enclosed volume (0.01 = 1 %)."""
        return abs(self.volume - self.true_volume) / self.true_volume


def object_triangles(triangles: np.ndarray, item, margin_mm: float = 3.0) -> np.ndarray:
    """The triangles whose centroids lie within ``margin_mm`` of ``item``'s surface."""
    centroids = np.asarray(triangles, dtype=np.float64).mean(axis=1)
    return triangles[np.abs(item.signed_distance(centroids)) < margin_mm]


def measure_object(triangles: np.ndarray, item, margin_mm: float = 3.0) -> Measurement:
    """Centre, size, surface RMS and enclosed volume of one phantom object in a mesh.

    Parameters
    ----------
    triangles:
        ``(n, 3, 3)`` mesh in LPS mm (the whole model; the object's part is taken
        by distance from its true surface).
    item:
        The :class:`Sphere` or :class:`Box` to measure.
    """
    own = object_triangles(triangles, item, margin_mm)
    if len(own) == 0:
        raise ValueError(f"no part of the mesh lies near {item}")
    vertices = np.unique(own.reshape(-1, 3), axis=0)
    volume = enclosed_volume(own)
    if isinstance(item, Sphere):
        centre, radius = fit_sphere(vertices)
        rms = float(np.sqrt(np.mean(item.signed_distance(vertices) ** 2)))
        return Measurement(
            "sphere", np.asarray(item.centre, float), centre, np.array([2 * item.radius]),
            np.array([2 * radius]), rms, item.volume, volume, len(own),
        )
    true_centre = np.asarray(item.centre, dtype=np.float64)
    half = np.asarray(item.size, dtype=np.float64) / 2.0
    q = np.abs(vertices - true_centre) - half
    face_axis = np.argmax(q, axis=1)
    low, high, residuals = np.zeros(3), np.zeros(3), []
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        on_face = (face_axis == axis) & (q[:, others] < -margin_mm / 2).all(axis=1)
        for sign, out in ((-1.0, low), (1.0, high)):
            selected = vertices[on_face & (np.sign(vertices[:, axis] - true_centre[axis]) == sign), axis]
            out[axis] = selected.mean()
            residuals.append(selected - (true_centre[axis] + sign * half[axis]))
    rms = float(np.sqrt(np.mean(np.concatenate(residuals) ** 2)))
    return Measurement(
        "box", true_centre, (low + high) / 2.0, 2.0 * half, high - low, rms,
        item.volume, volume, len(own),
    )
