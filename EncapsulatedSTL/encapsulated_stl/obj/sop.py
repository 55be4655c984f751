"""The Encapsulated OBJ and Encapsulated MTL IODs (PS3.3 A.85.2 and A.85.3,
Supplement 208) as highdicom SOP classes, beside the STL one they share their modules with.

An OBJ model names its material library by a relative URI (``mtllib colours.mtl``);
in DICOM that library is a separate Encapsulated MTL object, and the OBJ object lists
it in Referenced Instance Sequence (0008,114A) with that URI in Relative URI
Reference Within Encapsulated Document (0068,7005) (PS3.3 C.24.2).  Texture maps an
MTL names would be further objects again (Multi-frame True Color SC, PS3.3 A.8.5.4),
referenced the same way; this software writes none, so an MTL that names one is only
accepted with the object it names.
"""

from __future__ import annotations

from ..iod.document import ENCAPSULATED_MTL_SOP_CLASS_UID, ENCAPSULATED_OBJ_SOP_CLASS_UID, MTL_MIME_TYPE, OBJ_MIME_TYPE
from ..iod.sop import Encapsulated3DModel
from .format import read_mtl, read_obj


def _check_referenced(names, referenced_uris: set[str], what: str, reference: str) -> None:
    missing = [name for name in names if name not in referenced_uris]
    if missing:
        raise ValueError(
            f"The {what} names {', '.join(repr(n) for n in missing)} ({reference}) but no object is "
            f'given for it in "referenced_documents": a DICOM reader could not find it.')


class EncapsulatedOBJ(Encapsulated3DModel):
    """SOP instance of the Encapsulated OBJ IOD (PS3.3 A.85.2): a Wavefront OBJ
    model, its coordinates in the Frame of Reference's LPS axes.

    Arguments as :class:`~encapsulated_stl.iod.sop.Encapsulated3DModel`, the OBJ bytes
    first; every material library its ``mtllib`` lines name must be given in
    ``referenced_documents`` as ``(mtl_dataset, name)``.
    """

    sop_class_uid_of_iod = ENCAPSULATED_OBJ_SOP_CLASS_UID
    mime_type = OBJ_MIME_TYPE
    has_frame_of_reference = True
    has_colors = True

    def _check_document(self, document, check_values: bool, referenced_uris: set[str]) -> None:
        _check_referenced(read_obj(document).material_libraries, referenced_uris, "OBJ", "mtllib")

    @staticmethod
    def document_triangles(document):
        return read_obj(document).triangles()


class EncapsulatedMTL(Encapsulated3DModel):
    """SOP instance of the Encapsulated MTL IOD (PS3.3 A.85.3): the Wavefront material
    library of an Encapsulated OBJ object.  It has no Frame of Reference: a library
    has colours, not coordinates.

    Arguments as :class:`~encapsulated_stl.iod.sop.Encapsulated3DModel`, the MTL bytes
    first; a texture map it names must be given in ``referenced_documents``.
    """

    sop_class_uid_of_iod = ENCAPSULATED_MTL_SOP_CLASS_UID
    mime_type = MTL_MIME_TYPE
    has_frame_of_reference = False
    has_colors = True

    def _check_document(self, document, check_values: bool, referenced_uris: set[str]) -> None:
        textures = [name for material in read_mtl(document).values() for name in material.textures]
        _check_referenced(dict.fromkeys(textures), referenced_uris, "MTL", "texture map")
