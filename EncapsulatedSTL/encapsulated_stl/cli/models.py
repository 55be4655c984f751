"""``wrap``, ``preview``, ``extract``, ``info`` and ``revise``: Encapsulated STL files in and out."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from ..errors import EncapsulatedSTLError, PacsError
from ..files import (
    check_not_input,
    check_output_directory,
    check_output_path,
    safe_file_stem,
    write_all_atomically,
    write_atomically,
)
from ..iod import codes
from ..iod.document import ENCAPSULATED_MTL_SOP_CLASS_UID
from ..iod.encapsulate import encapsulate_stl, save_dataset, save_datasets
from ..iod.model import (
    MODEL_SOP_CLASSES,
    EncapsulatedModel,
    model_from_dataset,
    model_triangles_mm,
    read_dataset,
    read_encapsulated_model,
)
from ..iod.versions import new_version, successors_in
from ..mesh.render import LARGEST_SIZE, VIEWS, Layer, RenderingUnavailable, check_size, png_bytes, render
from ..obj.encapsulate import encapsulate_obj, material_library_paths, read_obj_files
from ..obj.model import ModelMaterials, libraries_beside, library_from_dataset, materials_of
from ..pacs.peers import peer_for_destination
from ..pacs.transfer import successors_on
from ..series.source_series import reference_series, series_numbers, series_numbers_beside
from ..stl.format import (
    ValueCheck,
    binary_stl_bytes,
    binary_stl_for_encapsulation,
    declared_triangle_count,
    read_stl_file,
    rescale_binary_stl,
)
from . import notice_printer, one_line
from .options import (
    add_metadata_arguments,
    add_new_study_arguments,
    add_patient_id_argument,
    add_reference_arguments,
    check_series_number,
    metadata_from_args,
    new_study_from_args,
)
from .pacs import EXIT_TRANSFER_FAILED, PASSWORD_VARIABLE, TOKEN_VARIABLE


def register(subparsers) -> None:
    wrap = subparsers.add_parser(
        "wrap",
        help="wrap an STL (or OBJ with its MTL) file as a DICOM Encapsulated STL (OBJ + MTL) object",
        description="Wrap a binary (or ASCII, converted) STL as Encapsulated STL, or an OBJ file "
        "(name ending .obj) unchanged as Encapsulated OBJ, each material library its mtllib "
        "names as an Encapsulated MTL object in the same series, written beside OUT.dcm as "
        "OUT-mtl.dcm (OUT-mtl2.dcm...) and referenced by the OBJ object with its mtllib name. With "
        "--reference the objects join the source series' patient, study and Frame of "
        "Reference and list every source instance.",
    )
    wrap.add_argument("stl", metavar="MODEL.stl|MODEL.obj", help="STL or OBJ file, coordinates in patient LPS")
    wrap.add_argument("-o", "--output", required=True, metavar="OUT.dcm", help="output DICOM file")
    add_reference_arguments(wrap)
    add_metadata_arguments(wrap)
    add_new_study_arguments(wrap)
    wrap.set_defaults(run=run_wrap)

    preview = subparsers.add_parser(
        "preview",
        help="draw a model (Encapsulated STL of any producer, or STL) to a PNG picture",
        description="Render a model offscreen (no display or GPU needed) to a PNG: a parallel "
        "projection fitted to the model, from the patient's front (anterior: the patient's "
        "right on the picture's left, head up) or left side, lit from the viewer. The same "
        "model gives the same picture.",
    )
    preview.add_argument("model", metavar="MODEL", help="STL file or Encapsulated STL object")
    preview.add_argument("-o", "--output", required=True, metavar="OUT.png", help="output PNG file")
    preview.add_argument("--size", type=int, default=512, metavar="N",
                         help=f"picture width and height in pixels, 16 to {LARGEST_SIZE} (default: 512)")
    preview.add_argument("--view", choices=list(VIEWS), default="anterior",
                         help="where the model is seen from, in patient orientation (default: anterior)")
    preview.add_argument("--units", choices=list(codes.UNIT_MILLIMETRES),
                         help="units of an STL file, or of an object that declares none (default: mm)")
    preview.add_argument("--force", action="store_true", help="overwrite an existing output file")
    preview.set_defaults(run=run_preview)

    extract = subparsers.add_parser(
        "extract",
        help="write the STL (OBJ, MTL) inside an Encapsulated STL (OBJ, MTL) object to a file",
        description="Extract the STL. Without --units the bytes are exactly those wrapped; "
        "with --units the coordinates are converted from the declared units. From an "
        "Encapsulated OBJ object: the OBJ bytes as wrapped, or with OUT.stl every group's "
        "triangles as one binary STL, or with --groups one STL per group into a folder. From "
        "an Encapsulated MTL object: the MTL bytes as wrapped.",
    )
    extract.add_argument("dicom", metavar="IN.dcm", help="Encapsulated STL, OBJ or MTL file")
    extract.add_argument("-o", "--output", required=True, metavar="OUT.stl|OUT.obj|OUT.mtl|DIR",
                         help="output file (a folder with --groups)")
    extract.add_argument("--groups", action="store_true",
                         help="from an OBJ object: one binary STL per group, <number>_<group>.stl in the folder OUT")
    extract.add_argument(
        "--units", choices=list(codes.UNIT_MILLIMETRES),
        help="convert the coordinates to these units (default: keep the bytes unchanged)",
    )
    extract.add_argument(
        "--assume-units", choices=list(codes.UNIT_MILLIMETRES), metavar="UNITS",
        help="the units of an object that declares none (PixelMed's, without its metadata), "
        "for --units to convert from",
    )
    extract.add_argument("--force", action="store_true", help="overwrite an existing output file")
    extract.set_defaults(run=run_extract)

    info = subparsers.add_parser(
        "info",
        help="describe an Encapsulated STL object",
        description="Triangles, bounds (LPS mm), units, Frame of Reference, study, source "
        "series, title, description, usage and producer of an Encapsulated STL object.",
    )
    info.add_argument("dicom", metavar="IN.dcm", help="Encapsulated STL file")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.add_argument("--in", dest="search", metavar="DIR|PACS",
                      help="also list the later versions of the model found under DIR, or on a PACS "
                      "(AET@HOST:PORT, or a DICOMweb URL with --user, or the token in "
                      "ENCAPSULATED_STL_DICOMWEB_TOKEN): every model series of its study is retrieved")
    info.add_argument("--calling-aet", metavar="AET", help="our AE title, for --in AET@HOST:PORT")
    info.add_argument("--user", help="DICOMweb user, for --in URL (password in ENCAPSULATED_STL_DICOMWEB_PASSWORD)")
    info.set_defaults(run=run_info)

    revise = subparsers.add_parser(
        "revise",
        help="store an edited or combined model as a new version of earlier ones",
        description="Wrap an STL as a new version of earlier Encapsulated STL objects: same "
        "patient, study and Frame of Reference, a new series, the earlier objects named in "
        "Predecessor Documents Sequence with their purpose (CID 7062), their source "
        "instances referenced again. Units and usage (and, for an edit, laterality, "
        "description, series description, colour and opacity) are the first earlier "
        "object's unless given.",
    )
    revise.add_argument("earlier", nargs="+", metavar="EARLIER.dcm",
                        help="the Encapsulated STL object(s) this model is a new version of")
    revise.add_argument("stl", metavar="MODEL.stl", help="STL file, in the earlier models' coordinates")
    revise.add_argument("-o", "--output", required=True, metavar="OUT.dcm", help="output DICOM file")
    revise.add_argument(
        "--purpose", choices=list(codes.PREDECESSOR_PURPOSES), default="edited",
        help="edited: the earlier model, changed (129010); component: the earlier models are parts "
        "of this one (129011). Default: edited",
    )
    add_metadata_arguments(revise, units_default=None, units_help="default: the earlier model's")
    add_patient_id_argument(revise, "only for earlier models that have none: it is never written empty")
    revise.set_defaults(run=run_revise)


def run_preview(args: argparse.Namespace) -> int:
    model = Path(args.model)
    try:
        size = check_size(args.size)
    except EncapsulatedSTLError as error:
        raise EncapsulatedSTLError(error.reason, "--size") from None
    output = check_output_path(args.output, args.force, inputs=[model])
    triangles, _units, _how = model_triangles_mm(model, args.units)
    try:
        picture = render([Layer(triangles)], size, view=args.view)
    except RenderingUnavailable as error:
        raise EncapsulatedSTLError(error.reason, output) from None
    write_atomically(output, lambda stream: stream.write(png_bytes(picture)), force=args.force, inputs=[model])
    if not args.quiet:
        print(f"wrote {output}: {size} x {size} pixels, {args.view} view of {len(triangles)} triangles")
    return 0


def run_wrap_obj(args: argparse.Namespace) -> int:
    obj_path = Path(args.stl)
    output = check_output_path(args.output, args.force, inputs=[obj_path])
    obj, model, libraries = read_obj_files(obj_path)
    library_paths = [library_path for _mtl, _name, library_path in libraries]
    outputs = [output] + [check_output_path(path, args.force, inputs=[obj_path, *library_paths])
                          for path in material_library_paths(output, len(libraries))]
    source = reference_series(args.reference, args.series_uid) if args.reference else None
    inputs = [obj_path, *library_paths, *(source.files if source else ())]
    for path in outputs:
        check_not_input(path, inputs, str(path))
    metadata = metadata_from_args(args)
    if source is not None:
        check_series_number(metadata.series_number, source.study_series_numbers | series_numbers(source.datasets[:1]))
    study_uid = source.study_instance_uid if source is not None else args.study_uid
    datasets = encapsulate_obj(
        obj, [(mtl, name) for mtl, name, _path in libraries], source, metadata, new_study_from_args(args),
        path=obj_path, notice=notice_printer(args),
        used_series_numbers=series_numbers_beside(output, study_uid) if study_uid else ())
    save_datasets(list(zip(datasets, outputs)), force=args.force, inputs=inputs)
    if not args.quiet:
        linked = (f"linked to {len(source)} instance(s) of series {source.series_instance_uid}"
                  if source else "new study, no source series")
        print(f"wrote {output}: OBJ, {sum(len(g.triangles) for g in model.groups)} triangles in {len(model.groups)} "
              f"group(s), {args.units}, {linked}")
        for path, (_mtl, name, _library_path) in zip(outputs[1:], libraries):
            print(f"wrote {path}: MTL {name!r}, referenced by the OBJ object")
    return 0


def run_wrap(args: argparse.Namespace) -> int:
    stl_path = Path(args.stl)
    if args.reference is None and args.series_uid is not None:
        raise EncapsulatedSTLError("give the series with --reference too", "--series-uid")
    if stl_path.suffix.lower() == ".obj":
        return run_wrap_obj(args)
    output = check_output_path(args.output, args.force, inputs=[stl_path])
    stl, converted = binary_stl_for_encapsulation(read_stl_file(stl_path), stl_path)
    source = reference_series(args.reference, args.series_uid) if args.reference else None
    inputs = [stl_path, *(source.files if source else ())]
    check_not_input(output, inputs, args.output)
    # The NaN/Inf scan reads every byte; it runs on another core while the object
    # is built and written, and the output appears only if it passes.
    scan = ValueCheck(stl, stl_path)
    metadata = metadata_from_args(args)
    if source is not None:
        check_series_number(metadata.series_number, source.study_series_numbers | series_numbers(source.datasets[:1]))
    study_uid = source.study_instance_uid if source is not None else args.study_uid
    dataset = encapsulate_stl(
        stl, source, metadata, new_study_from_args(args),
        path=stl_path, check_values=False, notice=notice_printer(args),
        used_series_numbers=series_numbers_beside(output, study_uid) if study_uid else (),
    )
    save_dataset(dataset, output, force=args.force, verify=scan.wait, inputs=inputs)
    if not args.quiet:
        linked = (
            f"linked to {len(source)} instance(s) of series {source.series_instance_uid}"
            if source else "new study, no source series"
        )
        note = " (ASCII STL converted to binary)" if converted else ""
        print(
            f"wrote {output}: {declared_triangle_count(stl)} triangles, {args.units}, {linked}{note}"
        )
    return 0


def run_revise(args: argparse.Namespace) -> int:
    stl_path = Path(args.stl)
    earlier_paths = [Path(path) for path in args.earlier]
    inputs = [stl_path, *earlier_paths]
    output = check_output_path(args.output, args.force, inputs=inputs)
    earlier = [read_encapsulated_model(path) for path in earlier_paths]
    stl, converted = binary_stl_for_encapsulation(read_stl_file(stl_path), stl_path)
    scan = ValueCheck(stl, stl_path)
    metadata = metadata_from_args(args)
    check_series_number(metadata.series_number, series_numbers(model.dataset for model in earlier))
    dataset = new_version(
        stl, earlier, args.purpose, metadata, args.patient_id, path=stl_path, notice=notice_printer(args),
        used_series_numbers=series_numbers_beside(output, earlier[0].study_instance_uid),
    )
    save_dataset(dataset, output, force=args.force, verify=scan.wait, inputs=inputs)
    if not args.quiet:
        note = " (ASCII STL converted to binary)" if converted else ""
        print(f"wrote {output}: {declared_triangle_count(stl)} triangles, {dataset.MeasurementUnitsCodeSequence[0].CodeValue}, "
              f"{args.purpose} version of {len(earlier)} earlier model(s), series {dataset.SeriesNumber} "
              f"of study {dataset.StudyInstanceUID}{note}")
    return 0


def run_extract(args: argparse.Namespace) -> int:
    dataset = read_dataset(args.dicom, MODEL_SOP_CLASSES + (ENCAPSULATED_MTL_SOP_CLASS_UID,))
    if str(dataset.SOPClassUID) == ENCAPSULATED_MTL_SOP_CLASS_UID:
        return extract_material_library(args, library_from_dataset(dataset, args.dicom))
    model = model_from_dataset(dataset, args.dicom, check_values=False)
    if args.groups and not model.groups:
        raise EncapsulatedSTLError("--groups takes an Encapsulated OBJ object; this one holds an STL", args.dicom)
    if args.groups:
        return extract_groups(args, model)
    output = check_output_path(args.output, args.force, inputs=[args.dicom])
    if model.groups and output.suffix.lower() != ".stl":
        return extract_obj(args, model, output)
    if model.notes and not args.quiet:  # read leniently: the STL is whole
        print(one_line(f"warning: {args.dicom}: " + "; ".join(model.notes)), file=sys.stderr)
    data = model.binary_stl if model.groups else model.stl  # an OBJ's triangles as STL
    units = model.units or args.assume_units
    if not args.units or args.units == units:
        # Unchanged bytes: scanned on another core while they are written out (an ASCII or
        # OBJ document's values were checked as they were parsed).
        verify = None if model.mesh.header is None else ValueCheck(data, args.dicom).wait
        write_atomically(
            output, lambda stream: stream.write(data), args.force, verify, inputs=[args.dicom]
        )
    else:
        if units is None:
            raise EncapsulatedSTLError(
                f"cannot convert to {args.units}: {model.units_problem}; say which they are with "
                "--assume-units", args.dicom
            )
        factor = codes.UNIT_MILLIMETRES[units] / codes.UNIT_MILLIMETRES[args.units]
        scaled = rescale_binary_stl(model.binary_stl, factor, args.dicom)
        write_atomically(output, lambda stream: stream.write(scaled), args.force, inputs=[args.dicom])
    if not args.quiet:
        print(
            f"wrote {output}: {model.mesh.triangle_count} triangles, "
            f"{args.units or units or 'units unknown'}"
        )
    return 0


def extract_material_library(args: argparse.Namespace, library) -> int:
    if args.units or args.groups:
        raise EncapsulatedSTLError("an Encapsulated MTL object holds colours, not coordinates: "
                                   f"{'--units' if args.units else '--groups'} does not apply", args.dicom)
    output = check_output_path(args.output, args.force, inputs=[args.dicom])
    write_atomically(output, lambda stream: stream.write(library.mtl), args.force, inputs=[args.dicom])
    if not args.quiet:
        print(f"wrote {output}: MTL, {len(library.materials)} material(s)")
    return 0


def extract_obj(args: argparse.Namespace, model: EncapsulatedModel, output: Path) -> int:
    if args.units:
        raise EncapsulatedSTLError("the OBJ is written as wrapped; to convert its units, write an STL "
                                   "(OUT.stl) or one per group (--groups)", "--units")
    write_atomically(output, lambda stream: stream.write(model.stl), args.force, inputs=[args.dicom])
    if not args.quiet:
        print(f"wrote {output}: OBJ, {model.mesh.triangle_count} triangles in {len(model.groups)} group(s), "
              f"{model.units or 'units unknown'}")
    return 0


def extract_groups(args: argparse.Namespace, model: EncapsulatedModel) -> int:
    """Each group of an OBJ object as a binary STL, in the units asked for."""
    folder = check_output_directory(args.output, create=False)
    scale = 1.0
    units = model.units or args.assume_units
    if args.units and args.units != units:
        if units is None:
            raise EncapsulatedSTLError(f"cannot convert to {args.units}: {model.units_problem}; say which they "
                                       "are with --assume-units", args.dicom)
        scale = codes.UNIT_MILLIMETRES[units] / codes.UNIT_MILLIMETRES[args.units]
    names = [f"{number}_{safe_file_stem(group.name or 'group')}.stl" for number, group in enumerate(model.groups, 1)]
    targets = [folder / name for name in names]
    if folder.is_dir():
        for target in targets:
            check_output_path(target, args.force, inputs=[args.dicom])
    check_output_directory(folder)
    write_all_atomically([(target, binary_stl_bytes(group.triangles * np.float32(scale)))
                          for target, group in zip(targets, model.groups)], args.force, inputs=[args.dicom])
    if not args.quiet:
        for target, group in zip(targets, model.groups):
            print(f"wrote {target}: {len(group.triangles)} triangles, group '{group.name}'"
                  + (f", material '{group.material}'" if group.material else ""))
    return 0


def describe(model: EncapsulatedModel, materials: ModelMaterials | None = None) -> dict:
    """What ``info`` reports, as plain JSON-ready values; for an OBJ, its groups with the
    colour and opacity of their materials in ``materials`` (see :func:`.obj.model.materials_of`)."""
    low, high = model.bounds_mm()  # never empty: the reader refuses empty models
    found = materials.materials if materials is not None else {}
    return {
        "file": str(model.path) if model.path else None,
        "format": model.file_format,
        "triangles": model.mesh.triangle_count,
        "groups": [
            {"name": group.name, "material": group.material, "triangles": len(group.triangles),
             "color_rgb": list(found[group.material].diffuse) if group.material in found
             and found[group.material].diffuse else None,
             "opacity": found[group.material].opacity if group.material in found else None}
            for group in model.groups
        ],
        "material_libraries": [
            {"sop_instance_uid": uid, "uri": uri,
             "file": next((str(lib.path) for lib in (materials.libraries if materials else ()) if
                           lib.sop_instance_uid == uid), None)}
            for _class, uid, uri in model.referenced_documents
        ],
        "units": model.units,
        "units_problem": model.units_problem,
        "bounds_mm_lps": {"min": low.tolist(), "max": high.tolist()},
        "bounds_assume_mm": model.units is None,
        "frame_of_reference_uid": model.frame_of_reference_uid,
        "patient_name": model.patient_name,
        "patient_id": model.patient_id,
        "study_instance_uid": model.study_instance_uid,
        "series_instance_uid": model.series_instance_uid,
        "sop_instance_uid": model.sop_instance_uid,
        "source_series": [
            {
                "series_instance_uid": s.series_instance_uid,
                "study_instance_uid": s.study_instance_uid,
                "instances": len(s.sop_instance_uids),
            }
            for s in model.source_series
        ],
        "source_instances": len(model.source_instance_uids),
        "predecessors": [
            {"sop_instance_uid": p.sop_instance_uid, "series_instance_uid": p.series_instance_uid,
             "study_instance_uid": p.study_instance_uid, "purpose": p.purpose}
            for p in model.predecessors
        ],
        "title": model.title,
        "description": model.description,
        "series_description": model.series_description,
        "usage": model.usage,
        "laterality": model.laterality,
        "model_group_uid": model.model_group_uid,
        "color_rgb": list(model.color) if model.color else None,
        "opacity": model.opacity,
        "producer": model.producer,
        "problems": list(model.problems),
    }


def later_versions(args: argparse.Namespace, model: EncapsulatedModel) -> list:
    """The later versions under ``--in`` DIR, or on the PACS it names."""
    if Path(args.search).is_dir():
        return successors_in(args.search, model.sop_instance_uid or "")
    if "@" not in args.search and "://" not in args.search:
        raise EncapsulatedSTLError("is neither a directory nor a PACS (AET@HOST:PORT or a DICOMweb URL)", "--in")
    try:
        peer = peer_for_destination(
            args.search, calling_ae_title=args.calling_aet, token=None if args.user else os.environ.get(TOKEN_VARIABLE),
            user=args.user, password=os.environ.get(PASSWORD_VARIABLE) if args.user else None)
    except EncapsulatedSTLError as error:
        raise EncapsulatedSTLError(error.reason, "--in") from None
    return successors_on(peer, model.study_instance_uid or "", model.sop_instance_uid or "")


#: How a later version relates to the one it names, by CID 7062 purpose.
_RELATION = {"edited": "an edit of", "component": "built with, as a component,"}


def run_info(args: argparse.Namespace) -> int:
    model = read_encapsulated_model(args.dicom)
    materials = materials_of(model, libraries_beside(args.dicom)) if model.groups else None
    facts = describe(model, materials)
    if materials is not None:
        missing = ([f"material(s) {', '.join(repr(m) for m in materials.missing)} not found beside it"]
                   if materials.missing else [])
        facts["problems"] += materials.notes + missing
    if args.search is not None:
        try:
            later = later_versions(args, model)
        except PacsError as error:  # as find and fetch: the transfer failed, not the input
            print(one_line(f"error: {error}"), file=sys.stderr)
            return EXIT_TRANSFER_FAILED
        facts["successors"] = [
            {"location": s.location, "sop_instance_uid": s.sop_instance_uid,
             "version_of": s.predecessor_uid, "purpose": s.purpose}
            for s in later
        ]
    if facts["problems"] and not args.quiet:  # the model is whole; how it was stored, or some descriptions, are not
        print(one_line(f"warning: {args.dicom}: " + "; ".join(facts["problems"])), file=sys.stderr)
    if args.json:
        json.dump(facts, sys.stdout, indent=2)
        print()
        return 0
    bounds = facts["bounds_mm_lps"]
    span = [f"{lo:.2f}..{hi:.2f}" for lo, hi in zip(bounds["min"], bounds["max"])]
    bounds_text = "L " + span[0] + "  P " + span[1] + "  S " + span[2]
    if facts["bounds_assume_mm"]:
        bounds_text += "  (units unknown: taken as mm)"
    sources = facts["source_series"]
    source_text = (
        "; ".join(f"{s['series_instance_uid'] or 'series not stated'} ({s['instances']} instances)" for s in sources)
        or "none"
    )
    rows = [
        ("File", facts["file"]),
        ("Format", facts["format"]),
        ("Triangles", facts["triangles"]),
        ("Units", facts["units"] or f"unknown ({facts['units_problem']})"),
        ("Bounds (mm, LPS)", bounds_text),
        ("Frame of Reference", facts["frame_of_reference_uid"]),
        ("Patient", f"{facts['patient_name'] or '-'} (ID {facts['patient_id'] or '-'})"),
        ("Study", facts["study_instance_uid"]),
        ("Series", facts["series_instance_uid"]),
        ("Source series", source_text),
        ("Earlier versions", "; ".join(f"{p['sop_instance_uid']} ({p['purpose'] or 'purpose not stated'})"
                                       for p in facts["predecessors"]) or "none named"),
        ("Title", facts["title"]),
        ("Description", facts["description"]),
        ("Usage", facts["usage"]),
        ("Laterality", facts["laterality"]),
        ("Producer", facts["producer"]),
    ]
    if facts["groups"]:
        rows.insert(3, ("Groups", "; ".join(
            f"{g['name'] or '-'} ({g['triangles']} triangles"
            + (f", material {g['material']}" if g["material"] else "")
            + (", colour #%02x%02x%02x" % tuple(round(c * 255) for c in g["color_rgb"]) if g["color_rgb"] else "")
            + (f", opacity {g['opacity']:g}" if g["opacity"] is not None else "") + ")"
            for g in facts["groups"])))
        rows.insert(4, ("Material libraries", "; ".join(
            f"{m['uri'] or '-'} ({m['file'] or 'object ' + str(m['sop_instance_uid']) + ' not found beside it'})"
            for m in facts["material_libraries"]) or "none named"))
    if "successors" in facts:
        rows.append(("Later versions", "; ".join(
            f"{s['sop_instance_uid']} ({_RELATION.get(s['purpose'], 'a new version of')} {s['version_of']}, "
            f"in {s['location']})"
            for s in facts["successors"]) or f"none in {args.search}"))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        # one_line: a hostile file's values must not move the cursor or clear the screen
        print(one_line(f"{label:<{width}}  {value if value not in (None, '') else '-'}"))
    return 0
