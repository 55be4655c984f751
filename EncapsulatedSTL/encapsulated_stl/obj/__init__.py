"""The Encapsulated OBJ and MTL IODs (Supplement 208), in the DICOM object's layer
beside :mod:`..iod`: Wavefront OBJ and MTL bytes (:mod:`.format`, numpy only), the two
IODs (:mod:`.sop`), an OBJ with its MTL objects (:mod:`.encapsulate`) and an OBJ's
materials found among objects read (:mod:`.model`).
"""
