"""Benchmark: load a 2.3-million-triangle Encapsulated STL as Slicer's model polydata.

Target (issue 11, point 7): our load at least 1.5x faster than VTK's vtkSTLReader
(what Slicer uses for an .stl file) on the same STL, both giving a vtkPolyData
whose identical vertices are one shared point.  Measured in the same run on the
same (page-cached) files:

* vtkSTLReader: the extracted .stl file -> polydata (it merges points as it reads,
  with a point locator);
* ours: the DICOM file -> ``read_encapsulated_model`` -> ``polydata_from_triangles``
  (``merge_identical_vertices`` writing the faces straight into VTK's array, then
  LPS -> RAS millimetres on the shared points only), the steps the Slicer module
  runs, without the Slicer application.  ``merge_identical_vertices`` alone is
  timed too.

The model is the skull of ``from-ct --threshold 300`` on the Philips CT of
``../shared/data/dcm_qa_ct``, built once into ``--cache`` (or pass ``--dicom`` an
Encapsulated STL made elsewhere, e.g. on a stack without numba).  Times are the
best of ``--runs``; the first run of each in its fresh process is printed too (it
pays for memory the system has not handed out yet, as a user's first load does).
Memory is the growth of the resident set (VmHWM after resetting it through
/proc/self/clear_refs, minus the resident set before; VTK's allocations are
invisible to tracemalloc), each side in a fresh child process, imports excluded.
Linux only for memory.  Both polydata are checked to hold the same points and the
same triangles, exactly.

    python Testing/benchmarks/bench_slicer_load.py [--dicom skull.dcm] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_SERIES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dcm_qa_ct" / "Philips_bone_1mm_untilted"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "encapsulated-stl-bench"


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def build_model(series: Path, cache: Path) -> Path:
    """The from-ct skull of ``series`` in ``cache``, made unless already there."""
    dicom = cache / "skull.dcm"
    if not dicom.exists():
        from encapsulated_stl.cli import main

        cache.mkdir(parents=True, exist_ok=True)
        status = main(["--quiet", "from-ct", str(series), "--threshold", "300", "-o", str(dicom)])
        if status != 0:
            raise SystemExit(f"from-ct failed on {series}")
    return dicom


def extract_stl(dicom: Path, cache: Path) -> Path:
    """The STL inside ``dicom``, byte for byte (what ``encapsulated-stl extract`` writes)."""
    from encapsulated_stl.iod.model import read_encapsulated_model

    stl = cache / (dicom.stem + ".stl")
    model = read_encapsulated_model(dicom)
    if not stl.exists() or stl.stat().st_size != len(model.stl):
        stl.write_bytes(model.stl)
    return stl


def load_with_stl_reader(stl: Path):
    from vtkmodules.vtkIOGeometry import vtkSTLReader

    reader = vtkSTLReader()
    reader.SetFileName(str(stl))
    reader.Update()
    return reader.GetOutput()


def load_ours(dicom: Path, parts: dict | None = None):
    """DICOM file -> polydata in RAS mm, as the Slicer module loads a model."""
    from encapsulated_stl.series.acquisition_geometry import ras_from_lps
    from encapsulated_stl.iod.model import read_encapsulated_model
    from encapsulated_stl.mesh.polydata import polydata_from_triangles

    clock = [time.perf_counter()]

    def lap(name):
        now = time.perf_counter()
        if parts is not None:
            parts[name] = min(parts.get(name, float("inf")), now - clock[0])
        clock[0] = now

    model = read_encapsulated_model(dicom)
    lap("read_encapsulated_model")
    mm = model.millimetres_per_unit or 1.0
    polydata = polydata_from_triangles(model.mesh.triangles, lambda lps: ras_from_lps(lps) * mm)
    lap("polydata_from_triangles")
    return polydata


def merge_alone(dicom: Path, runs: int) -> float:
    """Best time of ``merge_identical_vertices`` on the model's STL records."""
    from encapsulated_stl.iod.model import read_encapsulated_model
    from encapsulated_stl.mesh.shared_vertices import merge_identical_vertices

    triangles = read_encapsulated_model(dicom).mesh.triangles
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        merge_identical_vertices(triangles)
        best = min(best, time.perf_counter() - start)
    return best


def child(kind: str, path: Path, runs: int) -> dict:
    """Run in a fresh process: best time of ``runs`` and resident-set growth of the first."""
    import encapsulated_stl.series.acquisition_geometry  # noqa: F401  (imports are not part of the cost)
    import encapsulated_stl.iod.model  # noqa: F401
    import encapsulated_stl.mesh.polydata  # noqa: F401
    import vtkmodules.vtkIOGeometry  # noqa: F401

    parts: dict = {}
    action = load_with_stl_reader if kind == "reader" else (lambda p: load_ours(p, parts))
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status("VmRSS")
    times = []
    for run in range(runs):
        start = time.perf_counter()
        polydata = action(path)
        times.append(time.perf_counter() - start)
        if run == 0:
            growth = _status("VmHWM") - before
        points, cells = polydata.GetNumberOfPoints(), polydata.GetNumberOfCells()
        del polydata
    if kind == "ours":
        parts["  of which merge_identical_vertices"] = merge_alone(path, runs)
    return {
        "seconds": min(times), "first_seconds": times[0], "peak_growth_bytes": growth,
        "points": points, "cells": cells, "parts": parts,
    }


def same_surface(dicom: Path, stl: Path) -> bool:
    """True when both polydata hold the same triangles and the same set of points."""
    import numpy as np
    from encapsulated_stl.series.acquisition_geometry import ras_from_lps
    from encapsulated_stl.mesh.polydata import mesh_from_polydata

    ours_points, ours_faces = mesh_from_polydata(load_ours(dicom))
    their_points, their_faces = mesh_from_polydata(load_with_stl_reader(stl))
    their_points = ras_from_lps(their_points)  # the reader gives the file's LPS
    same_triangles = np.array_equal(ours_points[ours_faces], their_points[their_faces])
    same_points = np.array_equal(np.unique(ours_points, axis=0), np.unique(their_points, axis=0))
    return bool(same_triangles and same_points)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=Path, default=DEFAULT_SERIES, help="CT series for from-ct")
    parser.add_argument("--dicom", type=Path, help="an Encapsulated STL to load instead of the from-ct skull")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the skull and its STL are kept")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", choices=["reader", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.path, args.runs)))
        return 0
    if args.dicom is None and not args.series.is_dir():
        print(f"error: {args.series}: no such series folder", file=sys.stderr)
        return 2
    dicom = args.dicom or build_model(args.series, args.cache)
    stl = extract_stl(dicom, args.cache)
    dicom.read_bytes(), stl.read_bytes()  # warm the page cache so both sides read from memory

    def measure(kind, path):
        result = subprocess.run(
            [sys.executable, __file__, "--runs", str(args.runs), "--child", kind, "--path", str(path)],
            check=True, capture_output=True, text=True,
        )
        return json.loads(result.stdout)

    import numpy as np
    import vtkmodules.vtkCommonCore as vtk_core

    reader, ours = measure("reader", stl), measure("ours", dicom)
    size = stl.stat().st_size
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, VTK {vtk_core.vtkVersion.GetVTKVersion()}")
    print(f"model              {dicom} ({reader['cells']} triangles, STL {size / 1e6:.1f} MB)")
    print(f"vtkSTLReader       {reader['seconds']:.3f} s   first run {reader['first_seconds']:.3f} s   "
          f"{reader['points']} points")
    print(f"ours               {ours['seconds']:.3f} s   first run {ours['first_seconds']:.3f} s   "
          f"{ours['points']} points")
    for name, seconds in ours["parts"].items():
        print(f"  {name:<37}{seconds:.3f} s  (best)")
    print(f"speed-up           {reader['seconds'] / ours['seconds']:.2f}x   first run "
          f"{reader['first_seconds'] / ours['first_seconds']:.2f}x  (target >= 1.5)")
    print(f"peak RSS growth    vtkSTLReader +{reader['peak_growth_bytes'] / 2**20:.0f} MiB, "
          f"ours +{ours['peak_growth_bytes'] / 2**20:.0f} MiB ({ours['peak_growth_bytes'] / size:.2f}x the STL; "
          f"up to {dicom.stat().st_size / 2**20:.0f} MiB of it the DICOM file's pages, mapped from the page cache)")
    agree = reader["points"] == ours["points"] and reader["cells"] == ours["cells"]
    print(f"points and triangles agree: {'yes' if agree else 'NO'}; "
          f"same surface exactly: {'yes' if same_surface(dicom, stl) else 'NO'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
