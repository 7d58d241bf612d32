"""ImageNet-1K (ILSVRC2012) for the ``paper`` scale: verify a local copy, never download;
extract it into image folders; read those folders as classification datasets.

    python -m paperzoo.data.imagenet verify --root DIR --out DIR/verified.json [--splits train val]
    python -m paperzoo.data.imagenet extract --root DIR --out DIR/extracted.json [--splits train val]

ImageNet-1K is only distributed to registered users (https://image-net.org/download-images,
"ILSVRC2012"), so the paper-scale data rule cannot fetch it the way
``coco_download`` fetches COCO: it checks that the archives someone placed under ``--root``
are the published ones and writes a small report, last and atomically
(``paperzoo.engine.io.write_json``: temporary file + ``os.replace``), as the rule's output.

**Archives and checksums.** The layout and MD5s are torchvision's
(``torchvision.datasets.imagenet.ARCHIVE_META``), i.e. the archives sit directly in ``root``:

========  ==============================  ==================================
key       file                            MD5
========  ==============================  ==================================
devkit    ``ILSVRC2012_devkit_t12.tar.gz``  ``fa75699e90414af021442c21a62c3abf``
train     ``ILSVRC2012_img_train.tar``      ``1d675b47d978889d74fa0da5fadfb00e``
val       ``ILSVRC2012_img_val.tar``        ``29b22e2961454d5413ddabcf34fc5622``
========  ==============================  ==================================

(torchvision 0.29.1; the devkit is always checked: it holds the class index and the
validation labels). The MD5s are streamed in 1 MiB chunks (``coco_download.md5_file``);
the training archive is ~147 GB, so expect tens of minutes per full verification.

Errors name the file, the expected MD5 and what was found (file absent / the MD5 computed),
and say where to get the archive. All missing files are reported at once before anything is
hashed; all checksum mismatches are reported together after hashing.

**Extraction** (:func:`extract_imagenet`) calls torchvision's own parsers
(``torchvision.datasets.imagenet.parse_devkit_archive`` / ``parse_train_archive`` /
``parse_val_archive``, which re-check each archive's MD5 themselves: budget another hashing
pass) and leaves, next to the archives::

    root/meta.bin                    torchvision's (wnid -> class names, val wnids) index
    root/train/<wnid>/*.JPEG         1,281,167 images, 1000 folders
    root/val/<wnid>/*.JPEG           50,000 images (ILSVRC2012_val_00000001.JPEG ...), 1000 folders

Each split is extracted into ``root/<split>.partial`` and renamed to ``root/<split>`` only
when complete, so an existing ``root/<split>`` is a finished one and is skipped (a stale
``.partial`` folder from a killed run is removed and redone).

**Datasets** (:class:`ImageNetFolders`): ``torchvision.datasets.ImageFolder`` over
``root/train`` and ``root/val``; both take their class order from the sorted wnid folder
names (label k = k-th wnid in sorted order, torchvision ``ImageNet``'s order too), and the
val classes must be exactly the train classes. Images are decoded by Pillow to uint8
(3, H, W) RGB tensors (:func:`read_rgb`).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# torchvision's parsers are looked up on the module at call time (tests patch them)
from torchvision.datasets import imagenet as tv_imagenet
from torchvision.datasets.imagenet import ARCHIVE_META

from paperzoo.engine.io import write_json

from .coco_download import ChecksumError, md5_file

if TYPE_CHECKING:
    import torch

DOWNLOAD_HINT = ("ImageNet-1K needs registration: download the ILSVRC2012 archives from "
                 "https://image-net.org/download-images (after registering at https://image-net.org) "
                 "and place them, unrenamed, directly in {root}")
SPLITS = ("train", "val")


class ImageNetArchiveMissing(FileNotFoundError):
    """One or more ImageNet-1K archives are absent from the root folder."""


class ImageNetChecksumError(ChecksumError):
    """One or more ImageNet-1K archives have an MD5 other than the published one."""


def _keys(splits: Sequence[str], meta: Mapping[str, tuple[str, str]]) -> list[str]:
    """``devkit`` followed by the requested splits, duplicates removed, names checked."""
    if "devkit" not in meta:
        raise ValueError("imagenet: `meta` has no 'devkit' entry")
    if isinstance(splits, str):
        splits = [splits]
    unknown = [s for s in splits if s not in meta]
    if unknown:
        raise ValueError(f"imagenet: unknown split(s) {unknown}; known: {sorted(k for k in meta if k != 'devkit')}")
    return list(dict.fromkeys(["devkit", *splits]))


def verify_imagenet(root: str | os.PathLike, splits: Sequence[str] = SPLITS, *,
                    meta: Mapping[str, tuple[str, str]] = ARCHIVE_META,
                    progress: Callable[[str], None] | None = None) -> dict:
    """Check that ``root`` holds the devkit and each split's archive with the published MD5.

    root: folder holding the archives (torchvision's ImageNet layout: ``root/<file name>``).
    splits: keys of ``meta`` besides ``"devkit"`` (default ``("train", "val")``).
    meta: ``{key: (file name, md5)}``, torchvision's ``ARCHIVE_META`` by default (tests pass
        a small fixture table).
    progress: called with one human-readable line before and after hashing each archive.

    Returns ``{"root": str, "archives": {key: {"file", "bytes", "md5", "expected_md5",
    "verified": True}}}`` (keys in order devkit, then ``splits``).
    Raises :class:`ImageNetArchiveMissing` (a ``FileNotFoundError``) when any archive is
    absent, :class:`ImageNetChecksumError` (a ``coco_download.ChecksumError``) when any MD5
    differs; both messages name every offending file, the expected MD5 and what was found,
    and point to image-net.org for the (registration-only) download.
    """
    root = Path(root)
    keys = _keys(splits, meta)
    hint = DOWNLOAD_HINT.format(root=root)
    missing = []
    for k in keys:
        name, md5 = meta[k]
        if not (root / name).is_file():
            missing.append(f"{root / name} ({k}; expected MD5 {md5}): not found")
    if missing:
        raise ImageNetArchiveMissing(f"ImageNet-1K: {len(missing)} archive(s) missing:\n  "
                                     + "\n  ".join(missing) + f"\n{hint}")
    archives, wrong = {}, []
    for k in keys:
        name, md5 = meta[k]
        path = root / name
        size = path.stat().st_size
        if progress:
            progress(f"imagenet: hashing {name} ({size / 2**30:.1f} GiB)")
        actual = md5_file(path)
        ok = actual == md5.lower()
        if progress:
            progress(f"imagenet: {name} {'ok' if ok else 'MD5 MISMATCH'}")
        if not ok:
            wrong.append(f"{path} ({k}, {size} bytes): MD5 {actual}, expected {md5}")
        archives[k] = {"file": name, "bytes": size, "md5": actual, "expected_md5": md5.lower(), "verified": ok}
    if wrong:
        raise ImageNetChecksumError(f"ImageNet-1K: {len(wrong)} archive(s) with a wrong checksum "
                                    f"(corrupt or incomplete copy):\n  " + "\n  ".join(wrong)
                                    + f"\nReplace them with fresh copies. {hint}")
    return {"root": str(root), "archives": archives}


# --- extraction -------------------------------------------------------------------------------

PARTIAL_SUFFIX = ".partial"
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")


def _count_images(folder: Path) -> tuple[int, int]:
    """(class folders, image files) under ``folder/<class>/``."""
    classes = images = 0
    with os.scandir(folder) as it:
        for entry in it:
            if entry.is_dir():
                classes += 1
                with os.scandir(entry.path) as files:
                    images += sum(1 for f in files if f.name.lower().endswith(IMAGE_EXTENSIONS))
    return classes, images


def extract_imagenet(root: str | os.PathLike, splits: Sequence[str] = SPLITS, *,
                     progress: Callable[[str], None] | None = None) -> dict:
    """Extract the verified ILSVRC2012 archives in ``root`` into ``root/<split>/<wnid>/*.JPEG``.

    Uses torchvision's parsers (module doc): ``parse_devkit_archive(root)`` writes
    ``root/meta.bin`` (skipped when it exists, or when no split needs extracting),
    ``parse_train_archive(root, folder="train.partial")`` and
    ``parse_val_archive(root, folder="val.partial")`` (val reads its wnids from ``meta.bin``);
    each finished ``<split>.partial`` is renamed to ``<split>``. A split whose folder exists
    is skipped, so a second call does nothing. The parsers raise ``RuntimeError`` when an
    archive is missing or its MD5 is wrong (run ``verify`` first for a clearer report).

    Returns ``{"root": str, "splits": {split: {"folder", "classes", "images",
    "extracted"}}}`` (``extracted``: False when the folder was already there).
    """
    root = Path(root)
    if isinstance(splits, str):
        splits = [splits]
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"imagenet extract: unknown split(s) {unknown}; known: {list(SPLITS)}")
    splits = list(dict.fromkeys(splits))
    say = progress or (lambda line: None)
    todo = [s for s in splits if not (root / s).is_dir()]
    if todo and not (root / tv_imagenet.META_FILE).is_file():
        say(f"imagenet: parsing the devkit into {root / tv_imagenet.META_FILE}")
        tv_imagenet.parse_devkit_archive(str(root))
    parsers = {"train": tv_imagenet.parse_train_archive, "val": tv_imagenet.parse_val_archive}
    report = {}
    for split in splits:
        dest, tmp = root / split, root / f"{split}{PARTIAL_SUFFIX}"
        extracted = split in todo
        if extracted:
            if tmp.exists():
                say(f"imagenet: removing the incomplete {tmp} of an earlier run")
                shutil.rmtree(tmp)
            say(f"imagenet: extracting {split} into {tmp} (MD5 re-checked by torchvision first)")
            parsers[split](str(root), folder=tmp.name)
            os.replace(tmp, dest)
        else:
            say(f"imagenet: {dest} exists, skipped")
        classes, images = _count_images(dest)
        report[split] = {"folder": str(dest), "classes": classes, "images": images, "extracted": extracted}
    return {"root": str(root), "splits": report}


# --- image folders as datasets ----------------------------------------------------------------

class ImageNetFolderMissing(FileNotFoundError):
    """``root/train`` or ``root/val`` is not there (not extracted yet)."""


class ImageNetClassMismatch(ValueError):
    """The val folder's classes are not exactly the train folder's."""


def read_rgb(path: str) -> torch.Tensor:
    """The image at ``path`` as uint8 (3, H, W) RGB (grey / CMYK / RGBA converted), decoded by
    Pillow as ``ImageFolder``'s default loader (torchvision's own decoders are deprecated
    since 0.29)."""
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor

    with Image.open(path) as im:
        return pil_to_tensor(im.convert("RGB"))


class ImageNetFolders:
    """The extracted ImageNet-1K splits as ``torchvision.datasets.ImageFolder`` s.

    root: folder holding ``train/<wnid>/`` and ``val/<wnid>/`` (:func:`extract_imagenet`).
    loader: path -> image (default :func:`read_rgb`: uint8 (3, H, W) tensors).

    Attributes: ``train``, ``val`` (``ImageFolder``: ``dset[j]`` -> ``(image, label)``,
    ``samples`` = ``[(path, label)]`` sorted by class, then file name), ``classes`` (the
    sorted wnids, shared by both), ``class_to_idx``.
    Raises :class:`ImageNetFolderMissing` (a ``FileNotFoundError``) naming the absent folder,
    :class:`ImageNetClassMismatch` (a ``ValueError``) naming both folders and the classes
    found in only one of them.
    """

    def __init__(self, root: str | os.PathLike, *, loader: Callable[[str], object] = read_rgb):
        from torchvision.datasets import ImageFolder

        self.root = Path(root)
        folders = {s: self.root / s for s in SPLITS}
        missing = [str(f) for f in folders.values() if not f.is_dir()]
        if missing:
            raise ImageNetFolderMissing(
                f"ImageNet-1K: folder(s) {', '.join(missing)} not found; extract the verified archives first "
                f"(python -m paperzoo.data.imagenet extract --root {self.root})")
        self.train = ImageFolder(str(folders["train"]), loader=loader)
        self.val = ImageFolder(str(folders["val"]), loader=loader)
        if self.val.classes != self.train.classes:
            only_val = sorted(set(self.val.classes) - set(self.train.classes))
            only_train = sorted(set(self.train.classes) - set(self.val.classes))
            raise ImageNetClassMismatch(
                f"ImageNet-1K: the classes of {folders['val']} ({len(self.val.classes)}) differ from those of "
                f"{folders['train']} ({len(self.train.classes)}): only in val {only_val[:8]}"
                f"{' ...' if len(only_val) > 8 else ''}, only in train {only_train[:8]}"
                f"{' ...' if len(only_train) > 8 else ''}")
        self.classes, self.class_to_idx = self.train.classes, self.train.class_to_idx

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def first_by_name(dset, n: int | None) -> list[int]:
    """Indices of the first ``n`` images of an ``ImageFolder`` by file name (all with None).

    For the ImageNet-1K val folder that is ``ILSVRC2012_val_00000001.JPEG``, ... : the
    official, class-mixed order (the ``ImageFolder`` order is sorted by class, so its first
    ``n`` images would cover only the first classes).
    """
    order = sorted(range(len(dset.samples)), key=lambda j: (os.path.basename(dset.samples[j][0]), dset.samples[j][0]))
    return order if n is None else order[:n]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=("verify", "extract"))
    ap.add_argument("--root", type=Path, required=True, help="folder holding the ILSVRC2012 archives")
    ap.add_argument("--splits", nargs="+", default=list(SPLITS),
                    help="splits to check besides the devkit (verify) / to extract (extract)")
    ap.add_argument("--out", type=Path, help="report JSON (written last, atomically)")
    args = ap.parse_args(argv)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.step == "verify":
        # the module-level table is looked up at call time (tests replace it with a fixture table)
        report = verify_imagenet(args.root, args.splits, meta=ARCHIVE_META, progress=say)
    else:
        report = extract_imagenet(args.root, args.splits, progress=say)
    if args.out:
        write_json(args.out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
