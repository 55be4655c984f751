"""Benchmark: ``compare`` on two 2.3-million-triangle skulls.

The pair is real: the bone CT of bench_from_ct.py (512 x 512 x 140) made into a model
by from-ct at 300 HU twice, once exact (``smoothing=0``) and once with the default
smoothing, so the benchmark also says how far the smoothing moves the surface.  Times
are ratios against baselines measured in the same run on the same meshes:

* reading: both models from their files into ``(n, 3, 3)`` mm triangles (what the
  command does before it compares);
* nearest vertex: scipy's k-d tree over each mesh's distinct vertices, queried with
  the other mesh's samples (vertices and centroids), both ways, on all cores: the
  usual shortcut, which measures point-to-vertex distances, not point-to-surface.

``compare`` itself is timed as the command runs it after reading (samples, box
trees, exact closest points both ways, statistics), without and with ``--align
rigid``.  The models are made once into a temporary folder (or ``--keep DIR``);
numba's kernels are compiled before timing.  Peak resident memory is printed (Linux).

    python Testing/benchmarks/bench_compare.py [SERIES_DIR] [--runs 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np
from timing import best_of

DEFAULT_SERIES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dcm_qa_ct" / "Philips_bone_1mm_untilted"



def make_models(series: Path, folder: Path) -> tuple[Path, Path]:
    import encapsulated_stl as estl

    paths = folder / "skull-exact.dcm", folder / "skull-smoothed.dcm"
    for path, smoothing in zip(paths, (0.0, None)):
        if not path.exists():
            estl.save(estl.from_ct(series, 300, smoothing=smoothing, patient_id="BENCH"), path)
    return paths


def nearest_vertex(planned: np.ndarray, actual: np.ndarray) -> float:
    """Mean of the symmetric point-to-vertex distances (the shortcut): k-d trees only."""
    from scipy.spatial import cKDTree

    from encapsulated_stl.mesh.compare import _Samples

    means = []
    for mine, other in ((planned, actual), (actual, planned)):
        samples = _Samples(mine, "")
        tree = cKDTree(_Samples(other, "").vertex_points)
        distances, _ = tree.query(samples.points, workers=-1)
        means.append(float(samples.weights @ distances / samples.weights.sum()))
    return float(np.mean(means))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("series", nargs="?", type=Path, default=DEFAULT_SERIES)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="make the models here, or reuse them")
    args = parser.parse_args()
    if not args.series.is_dir():
        print(f"error: {args.series}: no such series folder", file=sys.stderr)
        return 2

    from encapsulated_stl.iod.model import model_triangles_mm
    from encapsulated_stl.mesh.compare import compare_surfaces
    from stl_samples import icosphere

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        exact_path, smoothed_path = make_models(args.series, folder)
        compare_surfaces(icosphere(2), icosphere(2) * 1.01, "rigid")  # compile numba's kernels

        def read_both():
            return model_triangles_mm(exact_path)[0], model_triangles_mm(smoothed_path)[0]

        read_both()  # the page cache
        reading, (exact, smoothed) = best_of(args.runs, read_both)
        shortcut, shortcut_mean = best_of(args.runs, lambda: nearest_vertex(exact, smoothed))
        plain, result = best_of(args.runs, lambda: compare_surfaces(exact, smoothed))
        aligned, rigid = best_of(1, lambda: compare_surfaces(exact, smoothed, "rigid"))

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(f"models             {len(exact):,} and {len(smoothed):,} triangles ({args.series.name}, 300 HU, "
          "exact and smoothed)")
    print(f"reading both       {reading:.2f} s")
    print(f"nearest vertex     {shortcut:.2f} s   ratio {shortcut / reading:.2f} to reading  "
          f"(mean {shortcut_mean:.3f} mm: point to vertex, not to surface)")
    print(f"compare            {plain:.2f} s   ratio {plain / reading:.2f} to reading, "
          f"{plain / shortcut:.2f} to nearest vertex")
    print(f"compare --align rigid {aligned:.2f} s   ratio {aligned / reading:.2f} to reading "
          f"({rigid.iterations} ICP iterations, turned {rigid.rotation_degrees:.4f} degrees)")
    for name, stats in (("symmetric", result.symmetric), ("exact to smoothed", result.planned_to_actual),
                        ("smoothed to exact", result.actual_to_planned)):
        print(f"  {name:<18} mean {stats.mean:.3f}  RMS {stats.rms:.3f}  95% {stats.p95:.3f}  max {stats.max:.3f} mm"
              f"  ({stats.samples:,} samples)")
    print(f"peak resident set  {peak:.0f} MiB (the whole process)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # stl_samples
    sys.exit(main())
