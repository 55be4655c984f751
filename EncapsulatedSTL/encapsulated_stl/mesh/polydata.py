"""Triangle meshes as numpy arrays <-> VTK polydata, the form Slicer's model nodes hold.

A mesh here is ``(points, faces)``: ``(p, 3)`` point coordinates and ``(n, 3)``
indices into them, one row per triangle (:mod:`.shared_vertices` makes one from
STL triangles).  The polydata built owns its memory.  A numpy array handed to VTK
without a copy is freed by Python when its last Python reference goes, while VTK
may still use it; so the arrays are allocated by VTK and numpy writes into them:
:func:`polydata_from_triangles` computes the faces straight into VTK's
connectivity array, :func:`polydata_from_mesh` copies them there.

Only the VTK modules used are imported (not the ``vtk`` package, which imports all
of VTK); vtkTriangleFilter is imported when a surface has polygons other than
triangles, or triangle strips, to split.
"""

from __future__ import annotations

import numpy as np
from vtkmodules.util.numpy_support import ID_TYPE_CODE, vtk_to_numpy
from vtkmodules.vtkCommonCore import (
    vtkDataArray,
    vtkDoubleArray,
    vtkFloatArray,
    vtkIdTypeArray,
    vtkPoints,
)
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

from .shared_vertices import merge_identical_vertices


def polydata_from_triangles(triangles: np.ndarray, point_coordinates=None) -> vtkPolyData:
    """A vtkPolyData surface of triangles whose identical vertices are one point.

    Parameters
    ----------
    triangles:
        ``(n, 3, 3)`` float32 or float64 vertex coordinates, as
        :func:`.shared_vertices.merge_identical_vertices` takes them (a view into
        the STL records of an Encapsulated STL document, for example).
    point_coordinates:
        Optional function of the ``(p, 3)`` shared points (in the dtype of
        ``triangles``) giving the ``(p, 3)`` coordinates to store, for example
        patient LPS in the object's units to RAS millimetres.  It runs on the
        distinct points only, a sixth of the vertices of a closed surface.

    Returns
    -------
    vtkPolyData
        As :func:`polydata_from_mesh` builds it; the faces are written straight
        into its connectivity array.

    Raises
    ------
    ValueError
        As :func:`.shared_vertices.merge_identical_vertices`.
    """
    shape = np.shape(triangles)
    if len(shape) != 3 or shape[1:] != (3, 3):
        raise ValueError(f"triangles must be an (n, 3, 3) array, not {shape}")
    connectivity = _vtk_array(vtkIdTypeArray(), (3 * shape[0],))
    if ID_TYPE_CODE == np.int64 and shape[0] > 0:
        faces = vtk_to_numpy(connectivity).reshape(-1, 3)
        points, faces = merge_identical_vertices(triangles, faces=faces)
    else:  # a VTK built with 32-bit ids: copy the faces over
        points, faces = merge_identical_vertices(triangles)
        np.copyto(vtk_to_numpy(connectivity), faces.reshape(-1), casting="same_kind")
    if point_coordinates is not None:
        count = points.shape[0]
        points = np.asarray(point_coordinates(points))
        if points.shape != (count, 3):
            raise ValueError(
                f"point_coordinates gave {points.shape} coordinates for {count} points"
            )
    return _polydata(points, connectivity)


def polydata_from_mesh(points: np.ndarray, faces: np.ndarray) -> vtkPolyData:
    """A vtkPolyData surface of triangles sharing their points.

    Parameters
    ----------
    points:
        ``(p, 3)`` point coordinates, any coordinate system and unit (the caller
        converts them first: Slicer wants RAS millimetres).  float32 points stay
        float32 (VTK_FLOAT, as vtkSTLReader gives), anything else becomes float64.
    faces:
        ``(n, 3)`` integer indices into ``points``, one triangle per row.

    Returns
    -------
    vtkPolyData
        ``p`` points and ``n`` triangles in its polygons, nothing else (no
        normals, no scalars), its arrays owned by VTK.

    Raises
    ------
    ValueError
        If the shapes are wrong or a face refers to a point that does not exist.
    """
    points = np.asarray(points)
    faces = np.asarray(faces)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be a (p, 3) array, not {points.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be an (n, 3) array of triangles, not {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= points.shape[0]):
        raise ValueError(
            f"faces refer to points {faces.min()}..{faces.max()}, but there are "
            f"{points.shape[0]} points"
        )
    connectivity = _vtk_array(vtkIdTypeArray(), (faces.size,))
    if faces.size:
        np.copyto(vtk_to_numpy(connectivity), faces.reshape(-1), casting="same_kind")
    return _polydata(points, connectivity)


def mesh_from_polydata(polydata: vtkPolyData) -> tuple[np.ndarray, np.ndarray]:
    """``(points, faces)`` of a surface's polygons and triangle strips, as triangles.

    Polygons with more than three points and triangle strips are split into
    triangles (vtkTriangleFilter, only when there are any); vertices and lines
    are left out.

    Returns
    -------
    points:
        ``(p, 3)`` copy of the polydata's points, float64, in its coordinate
        system and units (RAS millimetres for a Slicer model node).  Every
        point is returned, also those no triangle uses.
    faces:
        ``(n, 3)`` int64 indices into ``points``, one row per triangle.
    """
    if polydata.GetNumberOfPoints() == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    polys = polydata.GetPolys()
    needs_split = polydata.GetNumberOfStrips() > 0 or (
        polys.GetNumberOfCells() > 0 and polys.IsHomogeneous() != 3
    )
    if needs_split:
        from vtkmodules.vtkFiltersCore import vtkTriangleFilter

        triangulate = vtkTriangleFilter()
        triangulate.SetInputData(polydata)
        triangulate.PassVertsOff()
        triangulate.PassLinesOff()
        triangulate.Update()
        polydata = triangulate.GetOutput()
        polys = polydata.GetPolys()
    points = vtk_to_numpy(polydata.GetPoints().GetData()).astype(np.float64)
    if polys.GetNumberOfCells() == 0:
        return points, np.zeros((0, 3), np.int64)
    faces = vtk_to_numpy(polys.GetConnectivityArray()).astype(np.int64).reshape(-1, 3)
    return points, faces


def triangles_from_polydata(polydata: vtkPolyData) -> np.ndarray:
    """``(n, 3, 3)`` float64 vertex coordinates of a surface's triangles.

    The triangles of :func:`mesh_from_polydata`, each with its three points'
    coordinates (in the polydata's coordinate system and units).
    """
    points, faces = mesh_from_polydata(polydata)
    return np.take(points, faces, axis=0)


def _polydata(points: np.ndarray, connectivity: vtkIdTypeArray) -> vtkPolyData:
    """Polydata of ``points`` (copied) and triangles ``connectivity`` (kept)."""
    points = np.asarray(points)
    coordinates = _vtk_array(
        vtkFloatArray() if points.dtype == np.float32 else vtkDoubleArray(), points.shape
    )
    if points.size:
        vtk_to_numpy(coordinates)[...] = points
    vtk_points = vtkPoints()
    vtk_points.SetData(coordinates)
    cells = vtkCellArray()
    # Fixed-size cells: VTK 9.2 builds the offsets itself, 9.6 keeps them implicit.
    cells.SetData(3, connectivity)
    polydata = vtkPolyData()
    polydata.SetPoints(vtk_points)
    polydata.SetPolys(cells)
    return polydata


def _vtk_array(array: vtkDataArray, shape: tuple[int, ...]) -> vtkDataArray:
    """``array`` sized for ``shape``: rows of ``shape[1]`` components."""
    array.SetNumberOfComponents(shape[1] if len(shape) > 1 else 1)
    array.SetNumberOfTuples(shape[0])
    return array
