"""Writing a dataset in the DICOM File Format (PS3.10) with pydicom 2 or 3."""

from __future__ import annotations

import os
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset

# Slicer up to 5.10 bundles pydicom 2.4, and 5.12 pydicom 3: the core runs on both.
_PYDICOM_MAJOR = int(pydicom.__version__.split(".")[0])


def write_file_format(dataset: Dataset, target: str | os.PathLike | BinaryIO) -> None:
    """Write ``dataset`` to a path or binary stream as a DICOM file.

    Always with the 128-byte preamble, the "DICM" prefix and complete File Meta
    Information (Media Storage SOP Class and Instance UIDs from the dataset),
    which pydicom otherwise writes only as far as the dataset already has them.
    """
    # pydicom 3 calls this enforce_file_format and deprecates (to remove in 4)
    # pydicom 2's write_like_original=False, which 2.4 needs.
    if _PYDICOM_MAJOR >= 3:
        dataset.save_as(target, enforce_file_format=True)
    else:
        dataset.save_as(target, write_like_original=False)
