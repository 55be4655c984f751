"""``from-seg`` and ``rtstruct-rois``: Encapsulated STL models from segmentations."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..files import check_output_directory, check_output_path
from ..inputs.segments import segmentation_kind, segmentation_models
from ..iod.encapsulate import save_datasets
from ..mesh.surface import DEFAULT_SMOOTHING
from ..progress import Progress
from ..series.source_series import SourceSeries, series_numbers_beside
from . import notice_printer
from .options import (
    add_meshing_arguments,
    add_metadata_arguments,
    add_patient_id_argument,
    add_reference_arguments,
    check_series_number,
    metadata_from_args,
)


def register(subparsers) -> None:
    from_seg = subparsers.add_parser(
        "from-seg",
        help="one Encapsulated STL per segment of a DICOM SEG, RTSTRUCT, NIfTI or NRRD",
        description="Mesh the segments of a segmentation (DICOM SEG binary or fractional, "
        "RTSTRUCT, NIfTI label or binary map, NRRD or Slicer .seg.nrrd) in the exact patient "
        "geometry of the source series (tilted, unevenly spaced and oblique stacks included; "
        "NIfTI sform/qform honoured) and write one Encapsulated STL per segment, named and "
        "described after it, linked to every instance of the source series. Segments written "
        "together share one series and one Model Group UID and carry their colours. Empty "
        "segments are skipped with a notice, unless named with --segments.",
    )
    from_seg.add_argument("segmentation", metavar="SEG",
                          help="DICOM SEG or RTSTRUCT file, .nii/.nii.gz, .nrrd/.nhdr or .seg.nrrd")
    add_reference_arguments(from_seg, required=True)
    from_seg.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                          help="folder for the models (created if missing): <number>_<name>.dcm")
    from_seg.add_argument("--segments", nargs="+", metavar="NAME_OR_NUMBER",
                          help="only these segments (name, case-insensitive, or number)")
    from_seg.add_argument("--merge", action="store_true",
                          help="write one model of the chosen segments together")
    from_seg.add_argument(
        "--format", choices=("stl", "obj"), default="stl", dest="file_format",
        help="stl: one Encapsulated STL per segment (default); obj: one Encapsulated OBJ holding "
        "every segment as a group named after it, with an Encapsulated MTL giving each its colour "
        "(<name>_obj.dcm and <name>_mtl.dcm, one series)")
    add_meshing_arguments(from_seg, DEFAULT_SMOOTHING, "each model")
    add_metadata_arguments(from_seg)
    add_patient_id_argument(from_seg)
    from_seg.set_defaults(run=run_from_seg)

    rois = subparsers.add_parser(
        "rtstruct-rois",
        help="list the ROIs of an RT Structure Set",
        description="Number, name, interpreted type, contour count and colour of every ROI "
        "of an RTSTRUCT, for choosing --segments of from-seg.",
    )
    rois.add_argument("rtstruct", metavar="FILE", help="RTSTRUCT file")
    rois.add_argument("--json", action="store_true", help="print JSON instead of text")
    rois.set_defaults(run=run_rtstruct_rois)


def run_from_seg(args: argparse.Namespace) -> int:
    path = Path(args.segmentation)
    segmentation_kind(path)  # an unknown file is refused before anything else is read
    output = check_output_directory(args.output, create=False)
    metadata = metadata_from_args(args)

    def check(stack: SourceSeries, seen: set[int]) -> set[int]:
        check_series_number(metadata.series_number, seen)
        return series_numbers_beside(output, stack.study_instance_uid)  # earlier models there

    models, stack, series = segmentation_models(
        path, args.reference, series_uid=args.series_uid, segments=args.segments, merge=args.merge,
        smoothing=args.smoothing, decimate=args.decimate, metadata=metadata, patient_id=args.patient_id,
        notice=notice_printer(args), progress=Progress(enabled=False if args.quiet else None),
        check_source=check, file_format=args.file_format,
    )
    inputs = [path, *series.files]
    targets = [output / model.file_name for model in models]
    if output.is_dir():  # every file checked before the first is written
        for target in targets:
            check_output_path(target, args.force, inputs)
    check_output_directory(output)
    save_datasets([(model.dataset, target) for model, target in zip(models, targets)],
                  force=args.force, inputs=inputs)
    linked = f"linked to {len(stack)} instance(s) of series {stack.series_instance_uid}"
    for model, target in zip(models, targets):
        if args.quiet:
            continue
        if args.file_format == "stl":
            print(f"wrote {target}: {model.triangle_count} triangles, segment '{model.segment.title}', {linked}")
        elif model.triangle_count:
            print(f"wrote {target}: OBJ, {model.triangle_count} triangles in groups named after the "
                  f"segments, {linked}")
        else:
            print(f"wrote {target}: MTL, the colour of each segment, referenced by the OBJ object")
    return 0


def run_rtstruct_rois(args: argparse.Namespace) -> int:
    from ..inputs.rtstruct import list_rois

    rois = list_rois(args.rtstruct)
    if args.json:
        json.dump([{
            "number": r.number, "name": r.name, "interpreted_type": r.interpreted_type,
            "contours": r.contour_count, "color_rgb": list(r.color) if r.color else None,
            "frame_of_reference_uid": r.frame_of_reference_uid,
        } for r in rois], sys.stdout, indent=2)
        print()
        return 0
    print(f"{'number':>6}  {'name':<32} {'type':<12} {'contours':>8}  colour")
    for r in rois:
        colour = "#%02x%02x%02x" % tuple(round(v * 255) for v in r.color) if r.color else "-"
        print(f"{r.number:>6}  {r.name:<32} {r.interpreted_type or '-':<12} {r.contour_count:>8}  {colour}")
    return 0
