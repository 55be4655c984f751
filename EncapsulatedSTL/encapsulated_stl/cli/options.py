"""Command-line options shared by every command that writes Encapsulated STL."""

from __future__ import annotations

import argparse
import math

from .. import codes
from ..encapsulate import ModelMetadata, NewStudy
from ..errors import EncapsulatedSTLError
from ..surface import check_decimate, check_smoothing

#: Range of an IS value (Series Number): a signed 32-bit integer (PS3.5 6.2).
IS_RANGE = (-(2**31), 2**31 - 1)


def _number(text: str, kind=float):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"'{text}' is not a finite number")
    return value


def _checked(check, kind):
    """An argparse type: a number of ``kind``, then the library's own ``check`` of it."""

    def parse(text: str):
        try:
            return check(_number(text, kind))
        except EncapsulatedSTLError as error:
            raise argparse.ArgumentTypeError(error.reason) from None

    return parse


def series_number(text: str) -> int:
    """``--series-number``: an integer DICOM can store (IS)."""
    value = _number(text, int)
    if not IS_RANGE[0] <= value <= IS_RANGE[1]:
        raise argparse.ArgumentTypeError(f"{text}: a Series Number is a 32-bit signed integer")
    return value


def add_meshing_arguments(parser: argparse.ArgumentParser, default_smoothing: float, what: str) -> None:
    """``--smoothing`` and ``--decimate``, shared by the commands that make meshes."""
    parser.add_argument(
        "--smoothing", type=_checked(check_smoothing, float), default=default_smoothing, metavar="F",
        help=f"windowed-sinc smoothing factor 0..1, 0 for none (default {default_smoothing}); "
        "it neither shrinks nor shifts the surface",
    )
    parser.add_argument(
        "--decimate", type=_checked(check_decimate, int), metavar="TARGET_TRIANGLES",
        help=f"reduce {what} to about this many triangles (quadric decimation)",
    )


def add_metadata_arguments(parser: argparse.ArgumentParser) -> None:
    """Options describing the model (units, usage, laterality...) and its series."""
    group = parser.add_argument_group("model metadata")
    group.add_argument(
        "--units", choices=list(codes.UNIT_MILLIMETRES), default="mm",
        help="units of the STL coordinates (default: mm)",
    )
    group.add_argument("--description", help="Content Description: what the model shows")
    group.add_argument(
        "--usage", choices=list(codes.MODEL_USAGES), help="intended use (Model Usage Code Sequence)"
    )
    group.add_argument(
        "--laterality", choices=list(codes.LATERALITIES),
        help="intended placement: R, L, U (unpaired) or B (both)",
    )
    group.add_argument("--series-description", help="Series Description of the new series")
    group.add_argument("--series-number", type=series_number, help="Series Number of the new series")
    group.add_argument(
        "--burned-in-annotation", action="store_true",
        help="the model carries embossed or engraved patient identity (Burned In Annotation YES)",
    )
    group.add_argument(
        "--force", action="store_true", help="overwrite existing output files"
    )


def add_reference_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """``--reference SERIES`` and ``--series-uid``, the source image series."""
    parser.add_argument(
        "--reference", metavar="SERIES", required=required,
        help="source image series: a directory (searched recursively) or a DICOM file of it",
    )
    parser.add_argument(
        "--series-uid", metavar="UID", help="which series, when the directory holds several"
    )


def add_new_study_arguments(parser: argparse.ArgumentParser) -> None:
    """Patient and study of a model with no source series (like DCMTK's stl2dcm)."""
    group = parser.add_argument_group("new study (without --reference)")
    group.add_argument("--patient-name", help="Patient's Name, e.g. 'Doe^Jane'")
    group.add_argument("--patient-id", help="Patient ID")
    group.add_argument("--patient-birth-date", metavar="YYYYMMDD", help="Patient's Birth Date")
    group.add_argument("--patient-sex", choices=["M", "F", "O"], help="Patient's Sex")
    group.add_argument("--study-description", help="Study Description")
    group.add_argument("--accession-number", help="Accession Number")
    group.add_argument("--study-uid", metavar="UID", help="Study Instance UID (default: new)")


def metadata_from_args(args: argparse.Namespace, **overrides) -> ModelMetadata:
    """The :class:`ModelMetadata` the metadata options describe."""
    values = dict(
        units=args.units,
        content_description=args.description,
        usage=args.usage,
        laterality=args.laterality,
        series_description=args.series_description,
        series_number=args.series_number,
        burned_in_annotation=args.burned_in_annotation,
    )
    values.update(overrides)
    return ModelMetadata(**values)


def new_study_from_args(args: argparse.Namespace) -> NewStudy:
    return NewStudy(
        patient_name=args.patient_name,
        patient_id=args.patient_id,
        patient_birth_date=args.patient_birth_date,
        patient_sex=args.patient_sex,
        study_description=args.study_description,
        accession_number=args.accession_number,
        study_instance_uid=args.study_uid,
    )
