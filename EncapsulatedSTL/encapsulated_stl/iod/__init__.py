"""Layer 4, the DICOM object: the Encapsulated STL IOD and the base it shares with the
OBJ and MTL ones of :mod:`..obj` (:mod:`.sop`), its codes
(:mod:`.codes`), what its attributes may hold (:mod:`.values`), building one
(:mod:`.encapsulate`) and reading any producer's (:mod:`.model`, :mod:`.document`,
:mod:`.structure`).  Reading needs pydicom and numpy only; writing adds highdicom.
"""
