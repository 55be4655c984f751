"""Layer 6, PACS: send, find and fetch models (:mod:`.transfer`) over DIMSE
(:mod:`.dimse`, pynetdicom) or DICOMweb (:mod:`.dicomweb`); the peers and the
reports they share (:mod:`.peers`).
"""
