"""``from-ct`` and ``demo``: patient models meshed from CT/MR grey values.

``from-ct`` reads one series (exact slice geometry, never resampled), extracts the
iso-surface of the grey values at a threshold or band and wraps it as Encapsulated
STL linked to every source instance.  ``demo`` does the same on a synthetic tilted,
unevenly spaced phantom of known dimensions and shows how close the model is.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

import numpy as np

from ..errors import EncapsulatedSTLError, OutputError
from ..files import check_not_input, check_output_directory, check_output_path, write_atomically
from ..inputs.ct_models import CtModel, ct_model
from ..iod.encapsulate import ModelMetadata, save_datasets
from ..obj.encapsulate import material_library_paths
from ..mesh.surface import DEFAULT_SMOOTHING
from ..progress import Progress, task
from ..series.source_series import SourceSeries, series_numbers_beside
from . import notice_printer
from .options import (
    add_meshing_arguments,
    add_metadata_arguments,
    add_patient_id_argument,
    check_series_number,
    metadata_from_args,
)

DEFAULT_DEMO_DIRECTORY = "encapsulated-stl-demo"


def register(subparsers) -> None:
    from_ct = subparsers.add_parser(
        "from-ct",
        help="mesh a CT/MR series at a threshold and wrap it as Encapsulated STL",
        description="Extract the iso-surface of the grey values (sub-voxel, in the exact "
        "geometry of each slice: gantry tilt, uneven or missing slices and oblique "
        "orientations are handled without resampling) and wrap it as Encapsulated STL "
        "in the series' patient, study and Frame of Reference.",
    )
    from_ct.add_argument(
        "source", nargs="+", metavar="CT_DIR",
        help="the series: a directory (searched recursively) or its files",
    )
    from_ct.add_argument(
        "--threshold", required=True, metavar="HU[:HU_HIGH]",
        help="iso-surface level in the series' rescaled units (HU for CT), or a band "
        "LOW:HIGH; e.g. 300 for bone. Negative values: --threshold=-500",
    )
    from_ct.add_argument("-o", "--output", required=True, metavar="OUT.dcm", help="output DICOM file")
    from_ct.add_argument(
        "--format", choices=("stl", "obj"), default="stl", dest="file_format",
        help="stl: Encapsulated STL (default); obj: Encapsulated OBJ, its one group's material in an "
        "Encapsulated MTL written beside it as OUT-mtl.dcm")
    from_ct.add_argument("--series-uid", metavar="UID", help="which series, when the folder holds several")
    from_ct.add_argument(
        "--largest-component", action="store_true",
        help="keep only the largest connected piece (drops the table, noise specks)",
    )
    add_meshing_arguments(from_ct, DEFAULT_SMOOTHING, "the mesh")
    add_metadata_arguments(from_ct)
    add_patient_id_argument(from_ct)
    from_ct.set_defaults(run=run_from_ct)

    demo = subparsers.add_parser(
        "demo",
        help="mesh a synthetic tilted CT phantom and compare the model with the truth",
        description="Write a tilted, unevenly spaced CT phantom of known dimensions, run "
        "from-ct on it, read the model back and print measured against true size and "
        "position, and where a tilt-ignoring reading would have put it.",
    )
    demo.add_argument(
        "-o", "--output", metavar="DIR", default=DEFAULT_DEMO_DIRECTORY,
        help=f"folder for the phantom and the model (default ./{DEFAULT_DEMO_DIRECTORY}/)",
    )
    demo.add_argument("--force", action="store_true", help="redo a demo already in DIR")
    demo.set_defaults(run=run_demo)


def parse_threshold(text: str) -> float | tuple[float, float]:
    """``"300"`` -> 300.0, ``"300:2000"`` -> (300.0, 2000.0); bad text -> error."""
    parts = text.split(":")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(np.isfinite(values)):
        raise EncapsulatedSTLError(f"--threshold '{text}': give HU or HU_LOW:HU_HIGH, e.g. 300 or 300:2000")
    if len(values) == 1:
        return values[0]
    if values[1] <= values[0]:
        raise EncapsulatedSTLError(f"--threshold '{text}': the upper value must exceed the lower")
    return values[0], values[1]


def make_ct_model(
    source,
    level,
    output: str | os.PathLike,
    *,
    force: bool = False,
    **options,
) -> CtModel:
    """:func:`..ct_models.ct_model`, saved at ``output`` (atomically, never partially).

    The output is checked before the series is read, and again once the series'
    files are known (it must not be one of them), as is ``--series-number`` against
    the study's series in sight.
    """
    metadata = options.get("metadata") or ModelMetadata()
    given = output
    output = check_output_path(given, force, inputs=[source] if isinstance(source, (str, os.PathLike)) else list(source))

    def check(series: SourceSeries, seen: set[int]) -> set[int]:
        check_not_input(output, series.files, given)
        check_series_number(metadata.series_number, seen)
        return series_numbers_beside(output, series.study_instance_uid)

    libraries = material_library_paths(output, 1) if options.get("file_format") == "obj" else []
    for path in libraries:
        check_output_path(path, force, inputs=[source] if isinstance(source, (str, os.PathLike)) else list(source))
    made = ct_model(source, level, check_source=check, **options)
    for path in libraries:
        check_not_input(path, made.series.source.files, path)
    save_datasets([(made.dataset, output), *zip(made.material_libraries, libraries)], force,
                  inputs=made.series.source.files)
    made.path, made.dataset = output, None  # written: the model's memory is free again
    return made


def run_from_ct(args: argparse.Namespace) -> int:
    level = parse_threshold(args.threshold)
    progress = Progress(enabled=False if args.quiet else None)
    model = make_ct_model(
        args.source, level, args.output, series_uid=args.series_uid,
        smoothing=args.smoothing, decimate=args.decimate,
        largest_component=args.largest_component, metadata=metadata_from_args(args),
        force=args.force, progress=progress, notice=notice_printer(args), patient_id=args.patient_id,
        file_format=args.file_format,
    )
    if not args.quiet:
        skipped = model.series.skipped
        if skipped:  # one line, however many: what was left out and why
            reasons = Counter(reason for _, reason in skipped)
            print(
                f"notice: {skipped[0][0]}: {len(skipped)} instance(s) left out of the image stack "
                f"({'; '.join(f'{reason}: {count}' for reason, count in reasons.items())})",
                file=sys.stderr,
            )
        print(
            f"{model.path}: {model.triangle_count} triangles from {len(model.series.source)} "
            f"slices of series {model.series.source.series_instance_uid}"
            + (f" (OBJ; its MTL in {material_library_paths(model.path, 1)[0]})" if args.file_format == "obj" else "")
        )
    return 0


# -- demo ------------------------------------------------------------------------------

#: The demo's acquisition: 20 degree gantry tilt, uneven table steps and two missing
#: slices, so that both kinds of trouble are in one series.
DEMO_TILT_DEGREES = 20.0
DEMO_THRESHOLD_HU = 500.0


def _demo_phantom_options():
    steps = [1.25, 1.0, 1.5] * 20
    return dict(
        tilt_degrees=DEMO_TILT_DEGREES, slice_count=60, spacing_mm=steps[:59],
        missing_slices=(22, 37), rows=160, columns=160, pixel_spacing_mm=(0.6, 0.6),
        table_start_mm=5.0,
    )


def _vector(values) -> str:
    return "(" + ", ".join(f"{v:7.2f}" for v in values) + ")"


def run_demo(args: argparse.Namespace) -> int:
    from ..inputs.phantom import DEFAULT_OBJECTS, measure_object, phantom_picture, write_phantom
    from ..iod.model import read_encapsulated_model
    from ..mesh.render import RenderingUnavailable, png_bytes

    folder = check_output_directory(args.output, create=False)
    ct_folder = folder / "ct"
    model_path = folder / "phantom-model.dcm"
    picture_path = folder / "phantom-model.png"
    old = sorted(ct_folder.glob("CT*.dcm")) if ct_folder.is_dir() else []
    if (old or model_path.exists()) and not args.force:
        raise OutputError("already holds a demo; use --force to redo it", folder)
    for path in old:
        path.unlink()
    model_path.unlink(missing_ok=True)
    picture_path.unlink(missing_ok=True)

    quiet = args.quiet
    progress = Progress(enabled=False if quiet else None)
    with task(progress, "Writing phantom") as writing:
        phantom = write_phantom(ct_folder, objects=DEFAULT_OBJECTS, **_demo_phantom_options())
        writing.advance()
    made = make_ct_model(
        ct_folder, DEMO_THRESHOLD_HU, model_path, progress=progress, keep_voxels=False,
        metadata=ModelMetadata(content_description="encapsulated-stl demo phantom", usage="education"),
    )
    triangles = read_encapsulated_model(model_path).triangles_mm()
    geometry = made.series.geometry
    orthogonal = geometry.orthogonal_geometry()

    print(f"Phantom: {len(phantom.files)} CT slices in {ct_folder}, gantry tilt "
          f"{DEMO_TILT_DEGREES:g} deg, table steps 1.0 to 1.5 mm with 2 slices missing")
    print(f"Ran:     encapsulated-stl from-ct {ct_folder} --threshold {DEMO_THRESHOLD_HU:g} -o {model_path}")
    print(f"Model:   {model_path}, {len(triangles)} triangles read back (LPS mm)")
    print()
    header = f"{'object':<7} {'quantity':<15} {'true':>25} {'measured':>25} {'error':>10}"
    print(header)
    print("-" * len(header))
    shifts = []
    for item in phantom.objects:
        found = measure_object(triangles, item)
        print(f"{found.name:<7} {'centre L,P,S':<15} {_vector(found.true_centre):>25} "
              f"{_vector(found.centre):>25} {found.centre_error:7.3f} mm")
        quantity = "diameter" if found.name == "sphere" else "size L,P,S"
        print(f"{'':<7} {quantity:<15} {_vector(found.true_size):>25} {_vector(found.size):>25} "
              f"{found.size_error:7.3f} mm")
        print(f"{'':<7} {'volume mm3':<15} {found.true_volume:>25.0f} {found.volume:>25.0f} "
              f"{100 * found.volume_error:8.2f} %")
        misplaced = orthogonal.lps_from_index(geometry.index_from_lps(found.true_centre))[0]
        shifts.append((found.name, misplaced, float(np.linalg.norm(misplaced - found.true_centre))))
    print()
    print("A tilt-ignoring (orthogonal) reading of the same slices would put the centres at:")
    for name, misplaced, distance in shifts:
        print(f"  {name:<7} {_vector(misplaced)}  {distance:6.1f} mm away from the truth")
    misplaced_model = orthogonal.lps_from_index(geometry.index_from_lps(triangles.reshape(-1, 3))).reshape(-1, 3, 3)
    try:
        picture = phantom_picture(phantom.objects, triangles, misplaced_model)
    except RenderingUnavailable as error:
        notice_printer(args)(f"no picture: {error.reason}")
        return 0
    write_atomically(picture_path, lambda stream: stream.write(png_bytes(picture)), force=True)
    print()
    print(f"Picture: {picture_path} (anterior and left views: true shape in green lines, our model, "
          "the tilt-ignoring reading in red)")
    return 0
