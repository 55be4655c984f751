"""Benchmark: write and read a 2-million-triangle Wavefront OBJ (about 80 MB of text).

The mesh is a closed longitude-latitude sphere of 100 mm, its coordinates jittered
by up to 0.01 mm so that each has the 9 significant digits a scanned or segmented
model has (a round sphere's would be shorter to write and read).  Two groups with
materials, as an export of two segments gives.

Times are the best of ``--runs``, and ratios against the baseline measured in the
same run on the same triangles: ``stl.format.parse_binary_stl`` of the binary STL,
checks included (what reading an Encapsulated STL costs).  Binary STL is read in
place, without converting anything, so the ratio is large; the target is the
absolute time, a few seconds for 2 million triangles.  The round trip is checked
bit for bit.  Memory is the peak of Python allocations (tracemalloc, numpy
included) while reading, and its ratio to the OBJ text.

    python Testing/benchmarks/bench_wavefront.py [--triangles 2000000] [--runs 3]

Measured on the development machine (2 cores, Python 3.11, numpy 2.4), 2,000,000
triangles, 1,002,000 vertices, 82 MB: read_obj 1.37 s (71x binary STL's 0.019 s),
obj_bytes 1.95 s, read_obj's peak memory 4.5x the text.  With every vertex written
twice (2,002,000, 121 MB): read_obj 2.1 s, obj_bytes 2.8 s, peak 3.6x the text.
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # stl_samples, when run as a script

from timing import best_of  # noqa: E402



def sphere(count: int) -> np.ndarray:
    """``count`` triangles (for an even square count) of a closed 100 mm sphere, float32."""
    n = max(2, int(np.sqrt(count / 2)))
    theta, phi = np.meshgrid(np.linspace(0, np.pi, n + 1), np.linspace(0, 2 * np.pi, n + 1), indexing="ij")
    points = 100.0 * np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)
    points += np.random.default_rng(0).uniform(-0.01, 0.01, points.shape)
    points[:, -1] = points[:, 0]  # the seam closes
    a, b, c, d = points[:-1, :-1], points[1:, :-1], points[1:, 1:], points[:-1, 1:]
    # cell by cell, so that the first half of the triangles is one hemisphere
    triangles = np.stack([np.stack([a, b, c], -2), np.stack([a, c, d], -2)], 2).reshape(-1, 3, 3)
    return np.resize(triangles, (count, 3, 3)).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triangles", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from encapsulated_stl.obj.format import obj_bytes, read_obj
    from encapsulated_stl.stl.format import binary_stl_bytes, parse_binary_stl

    triangles = sphere(args.triangles)
    half = len(triangles) // 2
    groups = [("skin", "skin", triangles[:half]), ("bone", "bone", triangles[half:])]
    stl = bytes(binary_stl_bytes(triangles))

    write_s, text = best_of(args.runs, lambda: obj_bytes(groups, "model.mtl"))
    read_s, model = best_of(args.runs, lambda: read_obj(text))
    stl_s, _ = best_of(args.runs, lambda: parse_binary_stl(stl))
    back = model.triangles()
    assert np.array_equal(back.view(np.uint32), triangles.view(np.uint32)), "the round trip changed the triangles"
    tracemalloc.start()
    read_obj(text)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    print(f"OBJ: {len(triangles)} triangles, {model.vertex_count} vertices, {len(text) / 1e6:.1f} MB "
          f"(binary STL {len(stl) / 1e6:.1f} MB)")
    print(f"{'':18}{'seconds':>9}{'x binary STL':>14}")
    print(f"{'parse_binary_stl':18}{stl_s:9.3f}{1.0:14.1f}")
    print(f"{'read_obj':18}{read_s:9.3f}{read_s / stl_s:14.1f}")
    print(f"{'obj_bytes':18}{write_s:9.3f}{write_s / stl_s:14.1f}")
    print(f"read_obj peak memory {peak / 1e6:.1f} MB, {peak / len(text):.2f}x the text")
    return 0


if __name__ == "__main__":
    sys.exit(main())
