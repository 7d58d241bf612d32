"""CIFAR-100 and ImageNet-R for LAE's ``paper`` scale: download, checksum, safe extraction.

    python -m paperzoo.data.cl_download fetch --dataset cifar100   --params P --out <root>/manifest.json
    python -m paperzoo.data.cl_download fetch --dataset imagenet_r --params P --out <root>/manifest.json

``P`` is the ``data.<dataset>`` config block (``root``, ``allow_unverified``). Sources are
the ones LAE's official code uses (``gqk/LAE`` ``libml/data/imagenet_r.py``):

* CIFAR-100, python version: ``https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz``.
  MD5 ``eb9058c3a382ffc7106e4002c42a8d85`` as pinned by torchvision 0.29.1
  (``torchvision/datasets/cifar.py``, ``CIFAR100.tgz_md5``); no SHA-256 is published. The
  pickled batches are read with a restricted unpickler (numpy arrays, lists, bytes only) and
  stored in the project's classification layout (``train_images.npy`` (50000, 32, 32, 3)
  uint8, ``train_labels.npy``, ``test_*``, ``classes.json`` with the fine label names), which
  ``paperzoo.data.sets.load_classification`` reads.
* ImageNet-R: ``https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar`` with the L2P
  80/20 split lists that LAE downloads from gqk's gist (``train_list.txt``,
  ``val_list.txt``: ``<relative path> <label>`` per line). **No checksum is published for
  any of the three files**, so the fetch refuses unless the block sets
  ``allow_unverified: true``; the SHA-256 of what was downloaded is then recorded in the
  manifest (pin it in :data:`CATALOG` once confirmed — TODO). The listed JPEGs are decoded
  and resized to 224 × 224 into the same classification layout (``train_*`` = L2P train
  list, ``test_*`` = L2P val list; ~3.6 GB uint8 for the train split).

Archives go to ``<root>/downloads/``; downloads resume (HTTP Range) and are verified before
use (``coco_download.download``). Tar members are checked before anything is written
(absolute paths, ``..``, links, special files → :class:`UnsafeArchiveError`) and then
extracted with tarfile's ``data`` filter. The manifest is written last, atomically.
"""
from __future__ import annotations

import argparse
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np

from paperzoo.engine.io import read_params, write_json

from .coco_download import RemoteFile, UnsafeArchiveError, download
from .store import save_classification, sha256_file

_GIST = "https://gist.githubusercontent.com/gqk/e127fe18bf179bdcbdf5e29a8c1ae523/raw"
CATALOG = {
    "cifar100": {
        "cifar-100-python.tar.gz": RemoteFile(
            "cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            size=None, sha256=None, md5="eb9058c3a382ffc7106e4002c42a8d85"),
    },
    "imagenet_r": {
        "imagenet-r.tar": RemoteFile("imagenet-r.tar", "https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar",
                                     size=None, sha256=None),
        "train_list.txt": RemoteFile("train_list.txt", f"{_GIST}/train_list.txt", size=None, sha256=None),
        "val_list.txt": RemoteFile("val_list.txt", f"{_GIST}/val_list.txt", size=None, sha256=None),
    },
}
DATASETS = tuple(CATALOG)


# --- safe tar extraction ---------------------------------------------------------------------

def check_tar_member(info: tarfile.TarInfo) -> str:
    """The member's name if it is a safe regular file or folder; raises :class:`UnsafeArchiveError`."""
    name = info.name
    problems = []
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        problems.append("absolute path")
    if any(part == ".." for part in name.replace("\\", "/").split("/")):
        problems.append("'..' component")
    if info.issym() or info.islnk():
        problems.append("link")
    elif not (info.isfile() or info.isdir()):
        problems.append("special file")
    if problems:
        raise UnsafeArchiveError(f"unsafe archive member {name!r}: {', '.join(problems)}")
    return name


def safe_extract_tar(tar_path: str | Path, dest: str | Path) -> list[str]:
    """Extract ``tar_path`` (any compression) into ``dest`` after checking every member;
    returns the sorted top-level names."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path) as tf:
        members = tf.getmembers()
        for m in members:
            check_tar_member(m)
        tf.extractall(dest, members=members, filter="data")
    return sorted({m.name.split("/")[0] for m in members})


def _classes_json(names: list[str], counts: dict) -> dict:
    """The ``classes.json`` of the classification layout (``paperzoo.data.sets.load_classification``)."""
    return {"splits": {split: {"class_names": list(names), "n": int(n)} for split, n in counts.items()}}


# --- CIFAR-100 -----------------------------------------------------------------------------------

class _ArrayUnpickler(pickle.Unpickler):
    """Only what CIFAR's batches contain: dicts/lists/bytes and plain numpy arrays."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}   # how protocol-2 pickles written by Python 3 carry bytes (pure function)

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} (not a plain numpy array)")
        if module == "_codecs":
            import codecs

            return codecs.encode
        if name == "_reconstruct":
            from numpy._core.multiarray import _reconstruct   # numpy 2 (pinned); CIFAR's pickles name numpy.core

            return _reconstruct
        return getattr(np, name)


def read_cifar_batch(path: str | Path) -> dict:
    """One pickled CIFAR file → dict with str keys (``data``, ``fine_labels``, ``fine_label_names``, ...)."""
    with open(path, "rb") as fh:
        raw = _ArrayUnpickler(io.BufferedReader(fh), encoding="bytes").load()
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}


def cifar_to_store(extracted: Path, out: Path) -> dict:
    """``cifar-100-python/{train,test,meta}`` → ``<out>/{train,test}_{images,labels}.npy`` + ``classes.json``."""
    src = extracted / "cifar-100-python"
    counts = {}
    for split in ("train", "test"):
        b = read_cifar_batch(src / split)
        data = np.asarray(b["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{src / split}: data of shape {data.shape}, expected (N, 3072)")
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)             # (N, 32, 32, 3) RGB
        labels = np.asarray(b["fine_labels"], dtype=np.int64)
        if len(labels) != len(images):
            raise ValueError(f"{src / split}: {len(labels)} labels for {len(images)} images")
        save_classification(out, split, images, labels)
        counts[split] = int(len(images))
    meta = read_cifar_batch(src / "meta")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta["fine_label_names"]]
    write_json(out / "classes.json", _classes_json(names, counts))
    return {"counts": counts, "num_classes": len(names)}


# --- ImageNet-R ----------------------------------------------------------------------------------

def read_split_list(path: str | Path) -> list[tuple[str, int]]:
    """``<relative path> <label>`` lines (L2P split lists) → ``[(path, label)]``."""
    out = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{i}: expected '<path> <label>', got {line!r}")
        rel = parts[0]
        if rel.startswith("/") or ".." in rel.split("/"):
            raise ValueError(f"{path}:{i}: path {rel!r} leaves the data root")
        out.append((rel, int(parts[1])))
    return out


def imagenet_r_to_store(root: Path, size: int = 224) -> dict:
    """Decode the listed ImageNet-R JPEGs, resize each to ``size`` × ``size`` (bilinear; the
    official dataset's base transform is ``Resize((224, 224))``) and store them in the
    classification layout: ``train_*`` (L2P train list) and ``test_*`` (L2P val list), with
    ``classes.json`` = the WordNet folder name of each label."""
    from PIL import Image

    names: dict[int, str] = {}
    counts = {}
    for split, store_split in (("train", "train"), ("val", "test")):
        paths, labels = load_imagenet_r(root, split)
        images = np.empty((len(paths), size, size, 3), np.uint8)
        for i, p in enumerate(paths):
            with Image.open(p) as im:
                images[i] = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))
            names.setdefault(int(labels[i]), p.parent.name)
        save_classification(root, store_split, images, labels)
        counts[store_split] = len(paths)
    k = max(names) + 1
    missing = [c for c in range(k) if c not in names]
    if missing:
        raise ValueError(f"{root}: labels {missing[:5]} have no image in the split lists")
    write_json(root / "classes.json", _classes_json([names[c] for c in range(k)], counts))
    return {"counts": counts, "num_classes": k, "image_size": size}


def load_imagenet_r(root: str | Path, split: str) -> tuple[list[Path], np.ndarray]:
    """Image paths and labels of ``split`` ("train" | "val") from a fetched ImageNet-R root."""
    items = read_split_list(Path(root) / f"{split}_list.txt")
    return [Path(root) / p for p, _ in items], np.array([y for _, y in items], dtype=np.int64)


# --- fetch -----------------------------------------------------------------------------------------

def fetch(dataset: str, root: str | Path, *, allow_unverified: bool = False,
          catalog: dict | None = None, image_size: int = 224) -> dict:
    """Download, verify and unpack ``dataset`` into ``root``; returns the manifest (not written)."""
    if dataset not in CATALOG:
        raise KeyError(f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
    root = Path(root)
    files = (catalog or CATALOG)[dataset]
    got = {}
    for name, rf in files.items():
        path = download(rf.url, root / "downloads" / name, size=rf.size, sha256=rf.sha256, md5=rf.md5,
                        allow_unverified=allow_unverified)
        got[name] = {"url": rf.url, "sha256": rf.sha256 or sha256_file(path), "verified_by": "sha256" if rf.sha256 else
                     "md5" if rf.md5 else "nothing (allow_unverified)"}
    manifest = {"dataset": dataset, "root": str(root), "files": got}
    if dataset == "cifar100":
        tmp = root / "downloads" / "extracted"
        safe_extract_tar(root / "downloads" / "cifar-100-python.tar.gz", tmp)
        manifest.update(cifar_to_store(tmp, root))
    else:
        safe_extract_tar(root / "downloads" / "imagenet-r.tar", root)
        for split in ("train", "val"):
            src = root / "downloads" / f"{split}_list.txt"
            items = read_split_list(src)
            missing = [p for p, _ in items if not (root / p).is_file()]
            if missing:
                raise FileNotFoundError(f"{src}: {len(missing)} listed images missing under {root}, "
                                        f"e.g. {missing[:3]}")
            (root / f"{split}_list.txt").write_text(src.read_text())
        manifest.update(imagenet_r_to_store(root, image_size))
    return manifest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=("fetch",))
    ap.add_argument("--dataset", required=True, choices=DATASETS)
    ap.add_argument("--params", required=True, help="the data.<dataset> config block: JSON text or a JSON file")
    ap.add_argument("--out", required=True, type=Path, help="manifest JSON, written last (atomically)")
    args = ap.parse_args(argv)
    block = read_params(args.params)
    manifest = fetch(args.dataset, block["root"], allow_unverified=bool(block["allow_unverified"]))
    write_json(args.out, manifest)
    print(json.dumps({k: v for k, v in manifest.items() if k != "files"}, indent=2))


if __name__ == "__main__":
    main()
