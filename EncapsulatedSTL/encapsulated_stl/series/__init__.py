"""Layer 2, series geometry: find and choose DICOM series (:mod:`.source_series`), the
exact geometry of every slice (:mod:`.slice_geometry`), the voxel volume
(:mod:`.volume`) and the check of an acquisition's geometry against a volume as an
application shows it (:mod:`.acquisition_geometry`).
"""
