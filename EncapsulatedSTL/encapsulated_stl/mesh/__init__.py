"""Layer 3, meshes: iso-surfaces, smoothing and decimation (:mod:`.surface`,
:mod:`.smoothing`), shared vertices and VTK polydata (:mod:`.shared_vertices`,
:mod:`.polydata`).  Arrays in, arrays out; no DICOM.
"""
