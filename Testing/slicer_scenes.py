"""Real MRML scenes for the Slicer tests: CT volumes the way Slicer's DICOM reader
leaves them, and segmentations drawn on them.

A volume is built from a series' stored slices (no Slicer DICOM loader here) in one
of the four ways Slicer shows a tilted or unevenly spaced CT:

``sheared``    IJK-to-RAS through the first and last slice (Slicer 5.8+, even spacing)
``none``       orthogonal grid, no transform (regularization "none": simply wrong)
``grid``       orthogonal grid under "<volume> acquisition transform", a displacement
               grid moving every slice to its DICOM position (older Slicer, uneven spacing)
``hardened``   the ``grid`` volume with its transform hardened (voxels resampled)

The segment is an ellipsoid given in voxel indices, so its exact patient position is
known: :func:`exact_lps_of_local_surface` maps the segment's own surface through the
series' exact slice geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import vtk
from vtk.util import numpy_support

from encapsulated_stl.series.acquisition_geometry import ras_from_lps
from encapsulated_stl.iod.file_format import write_file_format
from encapsulated_stl.series.slice_geometry import SliceGeometry
from encapsulated_stl.series.volume import read_series_volume

CASES = ("sheared", "none", "grid", "hardened")


def matrix_from_numpy(array) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r][c]))
    return matrix


def numpy_from_matrix(matrix) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def exact_ras(geometry: SliceGeometry, ijk: np.ndarray) -> np.ndarray:
    return ras_from_lps(geometry.lps_from_index(ijk))


def orthogonal_ijk_to_ras(geometry: SliceGeometry) -> np.ndarray:
    """Slicer's reading with regularization off: first slice, normal, mean spacing."""
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ geometry.orthogonal_geometry().matrix


def sheared_ijk_to_ras(geometry: SliceGeometry) -> np.ndarray:
    """Slicer 5.8+'s reading of a tilted series: the slice axis through first and last slice."""
    matrix = orthogonal_ijk_to_ras(geometry)
    positions = geometry.positions
    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    matrix[:3, 2] = ras_from_lps(step)
    return matrix


def image_from_voxels(voxels: np.ndarray) -> vtk.vtkImageData:
    """vtkImageData of a ``[k, j, i]`` array (copied)."""
    k, j, i = voxels.shape
    image = vtk.vtkImageData()
    image.SetDimensions(i, j, k)
    array = numpy_support.numpy_to_vtk(np.ascontiguousarray(voxels).ravel(), deep=True)
    image.GetPointData().SetScalars(array)
    return image


def acquisition_grid_transform(scene, name: str, geometry: SliceGeometry, ijk_to_ras: np.ndarray, shape):
    """Grid transform node moving the orthogonal grid ``ijk_to_ras`` onto the exact slices.

    Like Slicer's acquisition transform: displacement sampled on the volume's own
    slices (one grid plane per slice, a coarse in-plane grid since a slice moves
    rigidly), linear interpolation, set as transform to parent.
    """
    import slicer

    slices, rows, columns = shape
    in_plane = 5
    i = np.linspace(-0.5 * columns, 1.5 * columns, in_plane)
    j = np.linspace(-0.5 * rows, 1.5 * rows, in_plane)
    k = np.arange(slices, dtype=np.float64)
    kk, jj, ii = np.meshgrid(k, j, i, indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1)
    regular = ijk @ ijk_to_ras[:3, :3].T + ijk_to_ras[:3, 3]
    displacement = exact_ras(geometry, ijk) - regular
    grid = vtk.vtkImageData()
    grid.SetDimensions(in_plane, in_plane, slices)
    spacing = np.linalg.norm(ijk_to_ras[:3, :3], axis=0) * np.array([i[1] - i[0], j[1] - j[0], 1.0])
    grid.SetSpacing(*spacing)
    grid.SetOrigin(*(np.array([i[0], j[0], 0.0]) @ ijk_to_ras[:3, :3].T + ijk_to_ras[:3, 3]))
    grid.GetPointData().SetScalars(numpy_support.numpy_to_vtk(displacement, deep=True))
    directions = vtk.vtkMatrix4x4()
    unit = ijk_to_ras[:3, :3] / np.linalg.norm(ijk_to_ras[:3, :3], axis=0)
    for r in range(3):
        for c in range(3):
            directions.SetElement(r, c, unit[r, c])
    transform = slicer.vtkOrientedGridTransform()
    transform.SetDisplacementGridData(grid)
    transform.SetGridDirectionMatrix(directions)
    transform.SetInterpolationModeToLinear()
    node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", f"{name} acquisition transform")
    node.SetAndObserveTransformToParent(transform)
    return node


@dataclass
class TiltedScene:
    scene: object
    volume: object
    segmentation: object
    segment_id: str
    geometry: SliceGeometry
    expected_lps: np.ndarray  # (n, 3, 3) exact LPS of the exported triangles
    source_files: list


def ellipsoid_mask(shape, center_ijk, radii_ijk) -> np.ndarray:
    k, j, i = np.mgrid[: shape[0], : shape[1], : shape[2]]
    c = center_ijk
    r = radii_ijk
    return ((i - c[0]) / r[0]) ** 2 + ((j - c[1]) / r[1]) ** 2 + ((k - c[2]) / r[2]) ** 2 <= 1.0


def add_labelmap_segment(segmentation, mask: np.ndarray, ijk_to_ras: np.ndarray, name: str, color):
    """A segment whose binary labelmap is ``mask`` ``[k, j, i]`` on the grid ``ijk_to_ras``."""
    import slicer

    labelmap = slicer.vtkOrientedImageData()
    labelmap.ShallowCopy(image_from_voxels(mask.astype(np.uint8)))
    labelmap.SetImageToWorldMatrix(matrix_from_numpy(ijk_to_ras))
    segment = slicer.vtkSegment()
    segment.SetName(name)
    segment.SetColor(*color)
    segment.AddRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(), labelmap)
    segmentation.GetSegmentation().AddSegment(segment)
    return segmentation.GetSegmentation().GetSegmentIdBySegment(segment)


def local_surface_triangles(segmentation, segment_id) -> np.ndarray:
    import slicer

    from encapsulated_stl.mesh.polydata import triangles_from_polydata

    poly = vtk.vtkPolyData()
    assert slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentClosedSurfaceRepresentation(
        segmentation, segment_id, poly, False)
    return triangles_from_polydata(poly)


def exact_lps_of_local_surface(triangles_local: np.ndarray, ijk_to_ras: np.ndarray, geometry) -> np.ndarray:
    flat = triangles_local.reshape(-1, 3)
    ijk = np.linalg.solve(ijk_to_ras[:3, :3], (flat - ijk_to_ras[:3, 3]).T).T
    return geometry.lps_from_index(ijk).reshape(-1, 3, 3)


def build_tilted_scene(series_dir, case: str, mask_from_voxels) -> TiltedScene:
    """The series as Slicer shows it in ``case``, with the segment ``mask_from_voxels(voxels)``
    (a ``[k, j, i]`` boolean array) drawn on it."""
    import slicer

    assert case in CASES
    scene = slicer.mrmlScene
    series = read_series_volume(series_dir)
    for path in series.source.files:
        slicer.dicomDatabase.insert(str(path))
    geometry = series.geometry
    voxels = np.round(series.voxels).astype(np.int16)
    ijk_to_ras = sheared_ijk_to_ras(geometry) if case == "sheared" else orthogonal_ijk_to_ras(geometry)

    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    volume.SetAndObserveImageData(image_from_voxels(voxels))
    volume.SetIJKToRASMatrix(matrix_from_numpy(ijk_to_ras))
    volume.SetAttribute("DICOM.instanceUIDs", " ".join(str(ds.SOPInstanceUID) for ds in series.source.datasets))

    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    segment_id = add_labelmap_segment(
        segmentation, mask_from_voxels(voxels), ijk_to_ras, "Structure", (0.9, 0.3, 0.2))
    local = local_surface_triangles(segmentation, segment_id)
    expected = exact_lps_of_local_surface(local, ijk_to_ras, geometry)

    if case in ("grid", "hardened"):
        grid = acquisition_grid_transform(scene, "CT", geometry, ijk_to_ras, voxels.shape)
        volume.SetAndObserveTransformNodeID(grid.GetID())
        segmentation.SetAndObserveTransformNodeID(grid.GetID())
    if case == "hardened":
        # the model keeps its exact vertices: closed surface becomes the source
        assert segmentation.CreateClosedSurfaceRepresentation()
        segmentation.SetSourceRepresentationToClosedSurface()
        logic = slicer.vtkSlicerTransformLogic()
        assert logic.hardenTransform(volume)
        assert logic.hardenTransform(segmentation)
        scene.RemoveNode(grid)
    return TiltedScene(scene, volume, segmentation, segment_id, geometry, expected,
                       [str(f) for f in series.source.files])


#: The synthetic phantom: a 20 degree tilted, evenly spaced CT of a sphere.
PHANTOM_TILT_DEGREES = 20.0
PHANTOM_SHAPE = (24, 64, 64)  # slices, rows, columns
PHANTOM_TABLE_STEP_MM = 2.0
PHANTOM_SPHERE_RADIUS_MM = 9.0


def phantom_sphere_centre_lps() -> np.ndarray:
    """Centre of the phantom's sphere (LPS mm): the exact position of voxel (32, 30, 11.5)."""
    return _phantom_geometry().lps_from_index(np.array([[32.0, 30.0, 11.5]]))[0]


def _phantom_geometry() -> SliceGeometry:
    tilt = np.radians(PHANTOM_TILT_DEGREES)
    slices, rows, columns = PHANTOM_SHAPE
    origin = np.array([-32.0, -40.0, -20.0])
    positions = origin + np.arange(slices)[:, None] * np.array([0.0, 0.0, PHANTOM_TABLE_STEP_MM])
    return SliceGeometry(positions, np.array([1.0, 0.0, 0.0]),
                         np.array([0.0, np.cos(tilt), -np.sin(tilt)]), (1.0, 1.0))


def write_tilted_phantom(folder) -> list:
    """Write the phantom as CT Image Storage files (LPS sphere sampled at the exact voxel
    positions, 1000 HU inside, -1000 outside); returns the paths."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    geometry = _phantom_geometry()
    slices, rows, columns = PHANTOM_SHAPE
    centre = phantom_sphere_centre_lps()
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    j, i = np.mgrid[:rows, :columns]
    paths = []
    for k in range(slices):
        ijk = np.stack([i.ravel(), j.ravel(), np.full(i.size, k)], axis=1).astype(np.float64)
        inside = np.linalg.norm(geometry.lps_from_index(ijk) - centre, axis=1) <= PHANTOM_SPHERE_RADIUS_MM
        pixels = np.where(inside, 2024, 24).astype(np.uint16).reshape(rows, columns)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID = "Phantom^Tilted", "PHANTOM-1"
        ds.PatientBirthDate, ds.PatientSex = "", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", ""
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 2, k + 1
        ds.SeriesDescription = "tilted phantom"
        ds.ImagePositionPatient = [float(v) for v in geometry.positions[k]]
        ds.ImageOrientationPatient = [float(v) for v in np.concatenate([geometry.row_direction, geometry.column_direction])]
        ds.PixelSpacing = [1.0, 1.0]
        ds.SliceThickness = PHANTOM_TABLE_STEP_MM
        ds.GantryDetectorTilt = PHANTOM_TILT_DEGREES
        ds.Rows, ds.Columns = rows, columns
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.PixelData = pixels.tobytes()
        path = folder / f"slice{k:03d}.dcm"
        write_file_format(ds, path)
        paths.append(path)
    return paths
