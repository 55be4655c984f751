"""Benchmark: the plugin and module inside Slicer's own Python (issue 11, point 7).

Runs through Testing/slicer_harness (a Slicer release's DICOMLib, slicer.util and real
MRML; ``--release``, default main) and prints, each measured in this run:

1. Loading the 2.3 M-triangle skull (from-ct of ../shared/data/dcm_qa_ct's Philips bone
   CT, cached by bench_slicer_load.py) into a model node: Slicer's own loading of the
   same .stl (slicer.util.loadModel: vtkSlicerModelsLogic -> vtkMRMLModelStorageNode ->
   vtkSTLReader) against ``EncapsulatedSTLLogic.loadFiles`` of the DICOM object (both
   with shared points).  Target: ours at least 1.5x faster.  Best of ``--runs``.
2. ``examineForImport`` of 100 model series (one object each) against reading their 100
   headers with pydicom (what a DICOM database does when it indexes them).
   Target: at most 10x.
3. Exporting a 5-segment segmentation drawn on a tilted CT: the time of each step.

    python Testing/benchmarks/bench_slicer.py [--release main] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_slicer_load  # noqa: E402
from timing import best_of  # noqa: E402
import slicer_harness  # noqa: E402



def model_loading(harness, runs: int) -> None:
    slicer = harness.slicer
    dicom = bench_slicer_load.build_model(bench_slicer_load.DEFAULT_SERIES, bench_slicer_load.DEFAULT_CACHE)
    stl = bench_slicer_load.extract_stl(dicom, bench_slicer_load.DEFAULT_CACHE)
    logic = sys.modules["EncapsulatedSTL"].EncapsulatedSTLLogic()

    def slicers_stl():
        harness.new_scene()
        return slicer.util.loadModel(str(stl))

    def ours():
        harness.new_scene()
        return logic.loadFiles([str(dicom)])[0]

    reader_time, reader_node = best_of(runs, slicers_stl)
    reader_points = reader_node.GetPolyData().GetNumberOfPoints()
    ours_time, our_node = best_of(runs, ours)
    our_points = our_node.GetPolyData().GetNumberOfPoints()
    print(f"1. load into a model node, {our_node.GetPolyData().GetNumberOfCells():,} triangles (best of {runs})")
    print(f"   Slicer's loadModel of the .stl (vtkSTLReader): {reader_time:.3f} s, {reader_points:,} points")
    print(f"   EncapsulatedSTLLogic.loadFiles of the object:  {ours_time:.3f} s, {our_points:,} points")
    print(f"   ours is {reader_time / ours_time:.2f}x faster (target >= 1.5x)")


def examine(harness, runs: int) -> None:
    import numpy as np
    import pydicom

    from encapsulated_stl.iod.encapsulate import ModelMetadata, NewStudy, encapsulate_stl, save_dataset
    from encapsulated_stl.stl.format import binary_stl_bytes
    from stl_samples import cube_triangles

    folder = Path(tempfile.mkdtemp(prefix="bench-examine-"))
    triangles = np.repeat(cube_triangles(20.0).astype(np.float64), 2000, axis=0)  # 24,000 triangles, 1.2 MB
    files = []
    for index in range(100):
        path = folder / f"model{index:03d}.dcm"
        save_dataset(encapsulate_stl(binary_stl_bytes(triangles + index), None,
                                     ModelMetadata(content_description=f"part {index}"),
                                     NewStudy(patient_id="BENCH-1")), path)
        files.append(str(path))
    harness.new_scene()
    for path in files:
        harness.database.insert(path)
    file_lists = [[path] for path in files]
    plugin_class = harness.dicom_plugins["DICOMEncapsulatedSTLPlugin"]

    headers_time, _ = best_of(runs, lambda: [pydicom.dcmread(p, stop_before_pixels=True, defer_size=1024) for p in files])
    examine_time, loadables = best_of(runs, lambda: plugin_class().examineForImport(file_lists))
    print(f"2. examineForImport of 100 model series of 24,000 triangles each (best of {runs})")
    print(f"   pydicom reading the 100 headers: {headers_time:.3f} s")
    print(f"   examineForImport:                {examine_time:.3f} s ({len(loadables)} loadables)")
    print(f"   = {examine_time / headers_time:.1f}x the headers (target <= 10x)")


def export_steps(harness) -> None:
    import numpy as np

    import slicer_scenes as scenes
    from encapsulated_stl.iod.encapsulate import encapsulate_stl
    from encapsulated_stl.series.acquisition_geometry import patient_lps_mapping
    from encapsulated_stl.stl.format import binary_stl_bytes

    harness.new_scene()
    folder = Path(tempfile.mkdtemp(prefix="bench-export-"))
    scenes.write_tilted_phantom(folder)
    scene = scenes.build_tilted_scene(folder, "none", lambda v: v > 0)
    matrix = scenes.orthogonal_ijk_to_ras(scene.geometry)
    for index in range(4):
        block = np.zeros(scenes.PHANTOM_SHAPE, dtype=bool)
        block[2 + 5 * index:5 + 5 * index, 5:55, 5 + 10 * index:14 + 10 * index] = True
        scenes.add_labelmap_segment(scene.segmentation, block, matrix, f"Block {index + 1}", (0.2, 0.4, 0.8))
    logic = sys.modules["EncapsulatedSTL"].EncapsulatedSTLLogic()
    node = scene.segmentation
    steps = {}

    def lap(name, action):
        start = time.perf_counter()
        result = action()
        steps[name] = time.perf_counter() - start
        return result

    source, volume, _ = lap("find the source series in the database", lambda: logic.sourceSeriesFor(node))
    lap("closed surfaces (Slicer's conversion)", node.CreateClosedSurfaceRepresentation)
    surfaces = lap("surfaces in world RAS", lambda: logic.worldSurfaces(node))
    to_lps, _ = lap("exact patient LPS: check the shown volume",
                    lambda: patient_lps_mapping(source, logic.shownVolume(volume)))
    lps = lap("exact patient LPS: map the vertices", lambda: [to_lps(s.triangles_ras) for s in surfaces])
    datasets = lap("STL bytes + DICOM objects", lambda: [encapsulate_stl(binary_stl_bytes(t), source) for t in lps])
    out = Path(tempfile.mkdtemp(prefix="bench-export-out-"))
    lap("write the files", lambda: logic.writeDatasets(datasets, str(out)))
    node.RemoveClosedSurfaceRepresentation()
    total = lap("whole export (createDatasets + writeDatasets)",
                lambda: logic.writeDatasets(logic.createDatasets(node), str(out)))
    triangles = sum(len(s.triangles_ras) for s in surfaces)
    print(f"3. export of a 5-segment segmentation ({triangles:,} triangles) on a tilted CT, each step once")
    for name, seconds in steps.items():
        print(f"   {name:<48} {seconds:.3f} s")
    assert len(total) == 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", default="main", choices=slicer_harness.RELEASES)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    harness = slicer_harness.load(args.release)
    if not harness.has_mrml:
        raise SystemExit("needs MRML (slicer-core, Python 3.10 and later)")
    print(f"Slicer {args.release}'s Python, Python {sys.version.split()[0]}")
    model_loading(harness, args.runs)
    examine(harness, args.runs)
    export_steps(harness)
    return 0


if __name__ == "__main__":
    sys.exit(main())
