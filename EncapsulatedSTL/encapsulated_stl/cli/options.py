"""Command-line options shared by every command that writes Encapsulated STL."""

from __future__ import annotations

import argparse
import math

from ..errors import EncapsulatedSTLError
from ..iod import codes
from ..iod.encapsulate import ModelMetadata, NewStudy
from ..iod.values import value_problem
from ..mesh.surface import check_decimate, check_smoothing


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


def attribute(keyword: str, kind=str):
    """An argparse type: a value attribute ``keyword`` can hold as given (see
    :mod:`..dicom_values`); one it cannot is refused, naming the attribute and the limit,
    never cut."""

    def parse(text: str):
        value = _number(text, int) if kind is int else text
        problem = value_problem(value, keyword)
        if problem:
            raise argparse.ArgumentTypeError(f"{problem} ({keyword})")
        return value

    return parse


def check_series_number(number: int | None, used: set[int]) -> None:
    """Refuse a ``--series-number`` another series of the study already has."""
    if number is not None and number in used:
        raise EncapsulatedSTLError(
            f"Series Number {number} is already used by another series of this study; choose "
            "another, or leave the option out for the next free number", "--series-number")


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


def add_metadata_arguments(parser: argparse.ArgumentParser, units_default: str | None = "mm",
                           units_help: str = "default: mm") -> None:
    """Options describing the model (units, usage, laterality...) and its series."""
    group = parser.add_argument_group("model metadata")
    group.add_argument(
        "--units", choices=list(codes.UNIT_MILLIMETRES), default=units_default,
        help=f"units of the STL coordinates ({units_help})",
    )
    group.add_argument("--description", type=attribute("ContentDescription"),
                       help="Content Description: what the model shows (at most 64 characters)")
    group.add_argument(
        "--usage", choices=list(codes.MODEL_USAGES), help="intended use (Model Usage Code Sequence)"
    )
    group.add_argument(
        "--laterality", choices=list(codes.LATERALITIES),
        help="intended placement: R, L, U (unpaired) or B (both)",
    )
    group.add_argument("--series-description", type=attribute("SeriesDescription"),
                       help="Series Description of the new series (at most 64 characters)")
    group.add_argument(
        "--series-number", type=attribute("SeriesNumber", int),
        help="Series Number of the new series (default: one above the highest of the study's "
        "series found beside the source and the output)",
    )
    group.add_argument(
        "--deidentification-method", type=attribute("DeidentificationMethod"), metavar="TEXT",
        help="De-identification Method, for source images that say their identity was removed "
        "but not how (without it the model does not repeat that claim)",
    )
    group.add_argument(
        "--burned-in-annotation", action="store_true",
        help="the model carries embossed or engraved patient identity (Burned In Annotation YES)",
    )
    group.add_argument(
        "--no-icon", dest="icon", action="store_false",
        help="leave out the Icon Image Sequence (a 64 x 64 grey picture of the model's anterior "
        "view, written by default)",
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


def add_patient_id_argument(parser, when: str = "used only where the source images have none: "
                            "it is never written empty") -> None:
    """``--patient-id``: Patient ID for a model whose source gives none."""
    parser.add_argument("--patient-id", type=attribute("PatientID"), help=f"Patient ID ({when})")


def add_new_study_arguments(parser: argparse.ArgumentParser) -> None:
    """Patient and study of a model with no source series (like DCMTK's stl2dcm)."""
    group = parser.add_argument_group("new study (without --reference)")
    group.add_argument("--patient-name", type=attribute("PatientName"), help="Patient's Name, e.g. 'Doe^Jane'")
    add_patient_id_argument(group, "required without --reference: it is never written empty; with "
                            "--reference, used only where the source images have none")
    group.add_argument("--patient-birth-date", type=attribute("PatientBirthDate"), metavar="YYYYMMDD",
                       help="Patient's Birth Date")
    group.add_argument("--patient-sex", choices=["M", "F", "O"], help="Patient's Sex")
    group.add_argument("--study-description", type=attribute("StudyDescription"), help="Study Description")
    group.add_argument("--accession-number", type=attribute("AccessionNumber"),
                       help="Accession Number (at most 16 characters)")
    group.add_argument("--study-uid", type=attribute("StudyInstanceUID"), metavar="UID",
                       help="Study Instance UID (default: new)")


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
        deidentification_method=args.deidentification_method,
        icon=args.icon,
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
