"""Benchmark: ``from-ct --threshold 300`` on a 512 x 512 x 140 CT series.

Targets (issue 3): total time at most 1.5x the time to decode the same series with
pydicom alone, and peak memory at most 3x the volume as float32.  Both are ratios
measured in the same run on the same (page-cached) files:

* decode: ``pydicom.dcmread(f).pixel_array`` for every file, nothing else;
* from-ct: the whole command in-process (scan headers, decode, rescale, flying
  edges, default smoothing, crossing repair, LPS mapping, STL, the icon, DICOM object,
  atomic write); and again with ``--no-icon``, to show what the icon costs.

Three parts of from-ct are also timed alone to show where the time goes: its
reading of the series (header scan, sorting, decoding into float32 with the
rescale), and, on the decoded volume, VTK's flying edges (both cores) and the
default windowed-sinc smoothing of its mesh.  Reading and flying edges are the
least any from-ct must do; their sum is the floor of the time ratio here.

Times are the best of ``--runs``; the first run of each in its fresh process is
printed too (it pays for memory the system has not handed out yet and for
loading numba's compiled kernels from their cache).  Memory is the growth of the resident set over
the operation (VmHWM after resetting it through /proc/self/clear_refs, minus the
resident set before), because VTK's allocations are invisible to tracemalloc;
each measurement runs in a fresh child process.  Linux only for memory.

    python Testing/benchmarks/bench_from_ct.py [SERIES_DIR] [--runs 3]
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


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


def decode(folder: Path) -> int:
    import pydicom

    total = 0
    for path in _files(folder):
        total += pydicom.dcmread(path).pixel_array.size
    return total


def from_ct(folder: Path, *options: str) -> int:
    from encapsulated_stl.cli import main

    with tempfile.TemporaryDirectory() as out:
        return main(["--quiet", "from-ct", str(folder), "--threshold", "300", "-o", str(Path(out) / "skull.dcm"),
                     *options])


def parts(folder: Path, runs: int) -> dict:
    """Best times of flying edges alone and of the default smoothing alone."""
    from encapsulated_stl.mesh import surface
    from encapsulated_stl.series.volume import read_series_volume

    best = {"reading": float("inf"), "flying_edges": float("inf"), "smoothing": float("inf")}
    for _ in range(runs):
        start = time.perf_counter()
        series = read_series_volume(folder, border=1)
        best["reading"] = min(best["reading"], time.perf_counter() - start)
    surface._use_all_cores()
    field, iso = surface._padded_field(series.voxels, 300.0, None)
    image = surface._image_data(field)
    for _ in range(runs):
        contour = surface._flying_edges(image, iso)
        start = time.perf_counter()
        contour.Update()
        best["flying_edges"] = min(best["flying_edges"], time.perf_counter() - start)
    mesh = contour.GetOutput()
    points, faces = surface._triangles(mesh)
    faces, on_voxels = surface._merge_vertices_on_voxels(points, faces)
    if on_voxels is not None:
        points, faces = surface._printable_at_voxels(points, faces, on_voxels)
    points = series.geometry.lps_from_index(points)
    for _ in range(runs):
        start = time.perf_counter()
        surface._smooth(points, faces, surface.DEFAULT_SMOOTHING, None)
        best["smoothing"] = min(best["smoothing"], time.perf_counter() - start)
    best["triangles"] = int(mesh.GetNumberOfCells())
    return best


def child(kind: str, folder: Path, runs: int) -> dict:
    """Run in a fresh process: best time of ``runs`` and resident-set growth of the first."""
    import encapsulated_stl.cli.meshing  # noqa: F401  (imports are not part of the cost)
    import pydicom  # noqa: F401
    import vtk  # noqa: F401

    action = {"decode": decode, "from-ct": from_ct,
              "from-ct-no-icon": lambda folder: from_ct(folder, "--no-icon")}[kind]
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status("VmRSS")
    times = []
    for run in range(runs):
        start = time.perf_counter()
        action(folder)
        times.append(time.perf_counter() - start)
        if run == 0:
            growth = _status("VmHWM") - before
    return {"seconds": min(times), "first_seconds": times[0], "peak_growth_bytes": growth}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("series", nargs="?", type=Path, default=DEFAULT_SERIES)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=["decode", "from-ct", "from-ct-no-icon", "parts"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "parts":
        print(json.dumps(parts(args.series, args.runs)))
        return 0
    if args.child:
        print(json.dumps(child(args.child, args.series, args.runs)))
        return 0
    if not args.series.is_dir():
        print(f"error: {args.series}: no such series folder", file=sys.stderr)
        return 2
    decode(args.series)  # warm the page cache so both sides read from memory

    def measure(kind):
        result = subprocess.run(
            [sys.executable, __file__, str(args.series), "--runs", str(args.runs), "--child", kind],
            check=True, capture_output=True, text=True,
        )
        return json.loads(result.stdout)

    import pydicom

    first = pydicom.dcmread(_files(args.series)[0], stop_before_pixels=True)
    volume_bytes = len(_files(args.series)) * int(first.Rows) * int(first.Columns) * 4
    decoded, made, alone = measure("decode"), measure("from-ct"), measure("parts")
    plain = measure("from-ct-no-icon")
    time_ratio = made["seconds"] / decoded["seconds"]
    memory_ratio = made["peak_growth_bytes"] / volume_bytes
    print(f"series             {args.series} ({len(_files(args.series))} files)")
    print(f"decode (pydicom)   {decoded['seconds']:.3f} s")
    print(f"from-ct            {made['seconds']:.3f} s   ratio {time_ratio:.2f}  (target <= 1.5)")
    print(
        f"  first run        {made['first_seconds']:.3f} s   ratio {made['first_seconds'] / decoded['first_seconds']:.2f}"
        "  (fresh process: memory from the system, compiled kernels loaded from numba's cache)"
    )
    print(f"  reading          {alone['reading']:.3f} s   ratio {alone['reading'] / decoded['seconds']:.2f}"
          "  (alone: scan, sort, decode, rescale)")
    for name, key in (("  flying edges", "flying_edges"), ("  smoothing", "smoothing")):
        print(f"{name:<19}{alone[key]:.3f} s   ratio {alone[key] / decoded['seconds']:.2f}  (alone, on the decoded volume)")
    floor = alone["reading"] + alone["flying_edges"]
    print(f"  reading + FE     {floor:.3f} s   ratio {floor / decoded['seconds']:.2f}  (the least a from-ct does)")
    print(f"float32 volume     {volume_bytes / 2**20:.0f} MiB")
    print(f"from-ct peak RSS   +{made['peak_growth_bytes'] / 2**20:.0f} MiB   ratio {memory_ratio:.2f}  (target <= 3)")
    print(f"  --no-icon        +{plain['peak_growth_bytes'] / 2**20:.0f} MiB   ratio "
          f"{plain['peak_growth_bytes'] / volume_bytes:.2f}; {plain['seconds']:.3f} s, the icon costing "
          f"{made['seconds'] - plain['seconds']:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
