"""Layer 1, Wavefront bytes: read and write OBJ surfaces and MTL materials (:mod:`.format`).

Needs numpy only: no DICOM, no geometry.  The layer beside :mod:`..stl`.
"""
