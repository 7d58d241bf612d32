"""SemanticKITTI reader (CPGNet's ``paper`` scale) and a tiny fixture in the real formats.

Download (registration/licence acceptance required; nothing here downloads):

1. KITTI odometry "velodyne laser data" (80 GB) from
   https://www.cvlibs.net/datasets/kitti/eval_odometry.php
2. SemanticKITTI labels (179 MB) from http://www.semantic-kitti.org/dataset.html
3. Unpack both into one root so that it reads::

       <root>/sequences/<SS>/velodyne/<FFFFFF>.bin     float32 (N, 4): x, y, z [m], remission
       <root>/sequences/<SS>/labels/<FFFFFF>.label     uint32 (N,): semantic id = low 16 bits,
                                                       instance id = high 16 bits

Verification: sequences 00–10 have labels; frame counts per sequence are in
:data:`FRAMES` (the official ``semantic-kitti-api`` numbers: 19,130 train frames in 00–07,
09, 10 and 4,071 in 08; 23,201 labelled frames in all). :func:`verify` checks presence and counts.

Splits (official): train = 00–10 without 08, val = 08, test = 11–21 (no labels; CodaLab).
Learning map: the official ``semantic-kitti.yaml`` ``learning_map`` (raw id → 0..19,
0 = ignore; moving classes fold into their static class).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

CLASSES = ("car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist",
           "motorcyclist", "road", "parking", "sidewalk", "other-ground", "building", "fence",
           "vegetation", "trunk", "terrain", "pole", "traffic-sign")   # learning ids 1..19; 0 = ignore
LEARNING_MAP = {
    0: 0, 1: 0, 10: 1, 11: 2, 13: 5, 15: 3, 16: 5, 18: 4, 20: 5, 30: 6, 31: 7, 32: 8, 40: 9,
    44: 10, 48: 11, 49: 12, 50: 13, 51: 14, 52: 0, 60: 9, 70: 15, 71: 16, 72: 17, 80: 18, 81: 19,
    99: 0, 252: 1, 253: 7, 254: 6, 255: 8, 256: 5, 257: 5, 258: 4, 259: 5,
}
SPLITS = {"train": ("00", "01", "02", "03", "04", "05", "06", "07", "09", "10"), "val": ("08",),
          "test": tuple(f"{i:02d}" for i in range(11, 22))}
FRAMES = {"00": 4541, "01": 1101, "02": 4661, "03": 801, "04": 271, "05": 2761, "06": 1101,
          "07": 1101, "08": 4071, "09": 1591, "10": 1201}

_LUT = np.zeros(1 << 16, dtype=np.int64)      # raw semantic id → learning id; unknown ids → 0 (ignore)
for _raw, _learn in LEARNING_MAP.items():
    _LUT[_raw] = _learn


def read_points(path: str | os.PathLike) -> np.ndarray:
    """``velodyne/*.bin`` → float32 (N, 4): x, y, z [m], remission."""
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


def read_labels(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``labels/*.label`` → ``(semantic raw id (N,) int64, instance id (N,) int64)``."""
    raw = np.fromfile(path, dtype=np.uint32)
    return (raw & 0xFFFF).astype(np.int64), (raw >> 16).astype(np.int64)


def learning_map(semantic: np.ndarray) -> np.ndarray:
    """Raw semantic ids → learning ids 0..19 (0 = ignore)."""
    return _LUT[np.asarray(semantic, dtype=np.int64)]


def frame_paths(root: str | os.PathLike, split: str) -> list[tuple[Path, Path | None]]:
    """Sorted ``(bin, label or None)`` pairs of ``split`` under ``root/sequences``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLITS)}")
    out = []
    for seq in SPLITS[split]:
        d = Path(root) / "sequences" / seq
        for b in sorted((d / "velodyne").glob("*.bin")):
            lab = d / "labels" / (b.stem + ".label")
            out.append((b, lab if lab.exists() else None))
    return out


class SemanticKittiScans:
    """``scans[i] = (points (N, 4) float32, labels (N,) int64 learning ids)`` of one split
    (labels all 0 where the frame has none, i.e. the test split)."""

    def __init__(self, root: str | os.PathLike, split: str):
        self.root, self.split = Path(root), split
        self.frames = frame_paths(root, split)

    def __len__(self) -> int:
        return len(self.frames)

    def head(self, n: int) -> "SemanticKittiScans":
        """The first ``n`` frames (still read lazily)."""
        out = SemanticKittiScans.__new__(SemanticKittiScans)
        out.root, out.split, out.frames = self.root, self.split, self.frames[:n]
        return out

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        b, lab = self.frames[i]
        pts = read_points(b)
        if lab is None:
            return pts, np.zeros(len(pts), np.int64)
        sem, _ = read_labels(lab)
        if len(sem) != len(pts):
            raise ValueError(f"{lab}: {len(sem)} labels for {len(pts)} points")
        return pts, learning_map(sem)


def verify(root: str | os.PathLike, *, full: bool = True) -> list[str]:
    """Problems found under ``root`` (empty list = fine). ``full`` also checks frame counts."""
    problems = []
    for seq, n in FRAMES.items():
        d = Path(root) / "sequences" / seq
        nb = len(list((d / "velodyne").glob("*.bin")))
        nl = len(list((d / "labels").glob("*.label")))
        if nb == 0:
            problems.append(f"sequence {seq}: no velodyne/*.bin")
        elif nl != nb:
            problems.append(f"sequence {seq}: {nb} scans but {nl} label files")
        elif full and nb != n:
            problems.append(f"sequence {seq}: {nb} scans, expected {n}")
    return problems


def write_fixture(root: str | os.PathLike, *, sequences: tuple[str, ...] = ("00", "08"), frames: int = 2,
                  points: int = 500, seed: int = 0) -> Path:
    """Tiny dataset in the real formats for tests: random points; raw labels drawn from every
    key of :data:`LEARNING_MAP` plus an unmapped id (77), with random instance ids in the high bits."""
    rng = np.random.default_rng(seed)
    raw_ids = np.array(sorted(LEARNING_MAP) + [77], dtype=np.uint32)
    for seq in sequences:
        d = Path(root) / "sequences" / seq
        (d / "velodyne").mkdir(parents=True, exist_ok=True)
        (d / "labels").mkdir(parents=True, exist_ok=True)
        for f in range(frames):
            pts = np.concatenate((rng.uniform(-40, 40, (points, 3)), rng.uniform(0, 1, (points, 1))), 1)
            pts.astype(np.float32).tofile(d / "velodyne" / f"{f:06d}.bin")
            sem = raw_ids[rng.integers(0, len(raw_ids), points)]
            inst = rng.integers(0, 50, points).astype(np.uint32)
            ((inst << np.uint32(16)) | sem).astype(np.uint32).tofile(d / "labels" / f"{f:06d}.label")
    return Path(root)


def semantickitti_from_config(block: dict) -> dict:
    """``data.semantickitti`` block → ``{"root": Path}`` (the reader's only input)."""
    return {"root": Path(block["root"])}


def main(argv: list[str] | None = None) -> None:
    """``verify --params <data.semantickitti block> --out <root>/manifest.json``: check the
    manually downloaded data (see the module docstring) and write a manifest, or fail
    listing every problem."""
    import argparse

    from paperzoo.engine.io import read_params, write_json

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("step", choices=("verify",))
    ap.add_argument("--params", required=True, help="the data.semantickitti block: JSON text or a JSON file")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    root = semantickitti_from_config(read_params(args.params))["root"]
    problems = verify(root)
    if problems:
        raise SystemExit(f"{root}: SemanticKITTI is incomplete (download needs registration; see "
                         f"`python -c 'import paperzoo.data.semantickitti as m; print(m.__doc__)'`):\n  "
                         + "\n  ".join(problems))
    write_json(args.out, {"dataset": "semantickitti", "root": str(root), "frames": FRAMES,
                          "splits": {k: list(v) for k, v in SPLITS.items()}})


if __name__ == "__main__":
    main()
