"""Layer 1, STL bytes: parse, check and write binary and ASCII STL (:mod:`.format`).

Needs numpy only: no DICOM, no geometry.
"""
