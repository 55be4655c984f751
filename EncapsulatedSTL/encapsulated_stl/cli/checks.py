"""``check``: would a model print?  Exit 0 when it would, 1 when not, 2 for bad input.
``compare``: how far is a printed part (or any model) from its plan?  Exit 0 when measured
(a measurement, not a verdict), 2 for bad input."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import EncapsulatedSTLError
from ..files import check_output_path, write_atomically
from ..iod import codes
from ..iod.model import model_triangles_mm
from ..mesh.compare import ALIGNMENTS, SurfaceComparison, compare_surfaces
from ..mesh.printability import Printability, check_printability
from ..mesh.render import RenderingUnavailable, png_bytes
from . import one_line

EXIT_NOT_PRINTABLE = 1


def register(subparsers) -> None:
    check = subparsers.add_parser(
        "check",
        help="check that a model would print: closed, manifold, oriented, not self-intersecting",
        description="Check an STL file or an Encapsulated STL object (any producer) for 3D "
        "printing: boundary edges, non-manifold edges and vertices, orientation (normals out "
        "of the material, cavities included), degenerate and duplicate triangles, "
        "self-intersections, connected components with their volumes, enclosed volume and "
        "bounds in mm. Exit 0 when it would print, 1 when not, 2 for a file that cannot be read.",
    )
    check.add_argument("model", metavar="MODEL", help="STL file or Encapsulated STL object")
    check.add_argument("--units", choices=list(codes.UNIT_MILLIMETRES),
                       help="units of an STL file, or of an object that declares none (default: mm)")
    check.add_argument("--json", action="store_true", help="print JSON instead of text")
    check.set_defaults(run=run_check)

    compare = subparsers.add_parser(
        "compare",
        help="surface distances between a planned model and the actual one (a print's scan)",
        description="Measure how far ACTUAL lies from PLANNED: the point-to-surface distances "
        "in mm (area-weighted mean, RMS, 95th percentile and maximum) from each to the other "
        "and both pooled (symmetric), optionally after moving ACTUAL rigidly onto PLANNED. "
        "Either may be an STL file or an Encapsulated STL object (any producer). Exit 0 when "
        "measured, 2 for a file that cannot be read.",
    )
    compare.add_argument("planned", metavar="PLANNED", help="the model as planned (STL or Encapsulated STL)")
    compare.add_argument("actual", metavar="ACTUAL", help="the model as made, e.g. an optical scan of the print")
    compare.add_argument("--align", choices=ALIGNMENTS, default="none",
                         help="none: compare the coordinates as they are (default); rigid: first "
                         "rotate and translate ACTUAL onto PLANNED (ICP, no scaling)")
    compare.add_argument("--units", choices=list(codes.UNIT_MILLIMETRES),
                         help="units of an STL file, or of an object that declares none (default: mm)")
    compare.add_argument("--png", metavar="OUT.png",
                         help="also draw ACTUAL coloured by its distance to PLANNED, with a colour bar")
    compare.add_argument("--force", action="store_true", help="overwrite an existing --png file")
    compare.add_argument("--json", action="store_true", help="print JSON instead of text")
    compare.set_defaults(run=run_compare)


def facts(result: Printability, units: str, how: str, path: str) -> dict:
    """What ``check`` reports, as plain JSON-ready values."""
    return {
        "file": path,
        "units": units,
        "units_known": how,
        "triangles": result.triangles,
        "points": result.points,
        "bounds_mm": {"min": result.bounds[0], "max": result.bounds[1]},
        "closed": result.closed,
        "boundary_edges": result.boundary_edges,
        "manifold": result.manifold,
        "non_manifold_edges": result.non_manifold_edges,
        "non_manifold_vertices": result.non_manifold_vertices,
        "oriented": result.oriented,
        "inconsistent_edges": result.inconsistent_edges,
        "wrongly_oriented_components": result.wrongly_oriented_components,
        "degenerate_triangles": result.degenerate_triangles,
        "duplicate_triangles": result.duplicate_triangles,
        "self_intersections": result.self_intersections,
        "components": [{"triangles": c.triangles, "volume_mm3": c.volume,
                        "kind": "cavity" if c.enclosed_by == 1 and c.volume < 0 else "shell"}
                       for c in result.components],
        "volume_mm3": result.volume,
        "printable": result.printable,
        "problems": result.problems,
    }


def run_check(args: argparse.Namespace) -> int:
    triangles, units, how = model_triangles_mm(args.model, args.units)
    result = check_printability(triangles)
    report = facts(result, units, how, args.model)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0 if result.printable else EXIT_NOT_PRINTABLE
    low, high = report["bounds_mm"]["min"], report["bounds_mm"]["max"]
    shells = sum(1 for c in report["components"] if c["kind"] == "shell")
    largest = max((abs(c["volume_mm3"]) for c in report["components"]), default=0.0)

    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    rows = [
        ("File", args.model),
        ("Triangles", f"{result.triangles:,} ({result.points:,} points)"),
        ("Units", f"{units} ({how})"),
        ("Bounds (mm)", "  ".join(f"{axis} {lo:.2f}..{hi:.2f}" for axis, lo, hi in zip("LPS", low, high))),
        ("Closed", f"{yes(result.closed)} ({result.boundary_edges} boundary edges)"),
        ("Manifold", f"{yes(result.manifold)} ({result.non_manifold_edges} non-manifold edges, "
                     f"{result.non_manifold_vertices} non-manifold vertices)"),
        ("Oriented", f"{yes(result.oriented)} ({result.inconsistent_edges} inconsistent edges, "
                     f"{result.wrongly_oriented_components} components facing the wrong way)"),
        ("Degenerate", f"{result.degenerate_triangles} triangles"),
        ("Duplicates", f"{result.duplicate_triangles} triangles"),
        ("Self-intersecting", f"{result.self_intersections} triangle pairs"),
        ("Components", f"{len(result.components)}: {shells} shell(s), {len(result.components) - shells} "
                       f"cavit{'y' if len(result.components) - shells == 1 else 'ies'}; largest "
                       f"{largest:.1f} mm³"),
        ("Volume", f"{result.volume:.1f} mm³"),
        ("Printable", "yes" if result.printable else "no: " + "; ".join(result.problems)),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(one_line(f"{label:<{width}}  {value}"))
    return 0 if result.printable else EXIT_NOT_PRINTABLE


def comparison_facts(result: SurfaceComparison, files: dict) -> dict:
    """What ``compare`` reports, as plain JSON-ready values."""
    return {
        "planned": files["planned"],
        "actual": files["actual"],
        "align": result.align,
        "transform": [[float(v) for v in row] for row in result.transform],
        "rotation_degrees": result.rotation_degrees,
        "rotation_axis": result.rotation_axis,
        "translation_mm": result.translation_mm,
        "iterations": result.iterations,
        "converged": result.converged,
        "distances_mm": {
            "symmetric": result.symmetric.as_dict(),
            "actual_to_planned": result.actual_to_planned.as_dict(),
            "planned_to_actual": result.planned_to_actual.as_dict(),
        },
    }


def run_compare(args: argparse.Namespace) -> int:
    inputs = [args.planned, args.actual]
    picture_path = check_output_path(args.png, args.force, inputs=inputs) if args.png else None
    files, meshes = {}, []
    for role in ("planned", "actual"):
        path = getattr(args, role)
        triangles, units, how = model_triangles_mm(path, args.units)
        files[role] = {"file": path, "units": units, "units_known": how, "triangles": len(triangles)}
        meshes.append(triangles)
    result = compare_surfaces(meshes[0], meshes[1], args.align, names=(args.planned, args.actual))
    del meshes
    report = comparison_facts(result, files)
    report["png"] = None if picture_path is None else str(picture_path)
    if picture_path is not None:
        try:
            picture = result.picture()
        except RenderingUnavailable as error:
            raise EncapsulatedSTLError(error.reason, picture_path) from None
        write_atomically(picture_path, lambda stream: stream.write(png_bytes(picture)), force=args.force,
                         inputs=inputs)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    if result.align == "none":
        alignment = "none (coordinates compared as they are)"
    else:
        axis = ", ".join(f"{v:.4f}" for v in result.rotation_axis)
        shift = ", ".join(f"{v:.3f}" for v in result.translation_mm)
        alignment = (f"rigid: rotated {result.rotation_degrees:.3f}° about ({axis}), then moved "
                     f"({shift}) mm; {result.iterations} ICP iteration(s)")
        if not result.converged:
            alignment += ", not settled: a turn of the shape fits as well (symmetric about an axis?)"
    rows = [(f"{role.capitalize()}", f"{f['file']} ({f['triangles']:,} triangles, {f['units']} {f['units_known']})")
            for role, f in files.items()]
    rows.append(("Alignment", alignment))
    if picture_path is not None:
        rows.append(("Picture", f"{picture_path} (ACTUAL coloured by distance, 0 to the 95th percentile)"))
    rows.append(("Distances (mm)", f"{'mean':>9} {'RMS':>9} {'95%':>9} {'max':>9}"))
    for label, stats in (("Symmetric", result.symmetric), ("Actual to planned", result.actual_to_planned),
                         ("Planned to actual", result.planned_to_actual)):
        rows.append((label, f"{stats.mean:9.3f} {stats.rms:9.3f} {stats.p95:9.3f} {stats.max:9.3f}"))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(one_line(f"{label:<{width}}  {value}"))
    return 0
