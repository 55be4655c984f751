"""Layer 5, what models are made from: CT (:mod:`.ct_models`), DICOM SEG, RTSTRUCT, NIfTI
and NRRD segmentations (:mod:`.segments` chooses the reader; :mod:`.segment` is what
the readers share), and the synthetic phantom CT of the demo (:mod:`.phantom`).
"""
