"""ImageNet-1K verification on small fixture archives with a fixture MD5 table, extraction with
torchvision's parsers replaced by fakes, and the image-folder datasets on tiny images (no real data)."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from paperzoo.data import imagenet
from paperzoo.data.coco_download import ChecksumError

PAYLOADS = {"devkit": b"devkit bytes", "train": b"train " * 300_000, "val": b"val archive"}  # train > 1 MiB


@pytest.fixture
def fixture_root(tmp_path):
    meta = {}
    for key, data in PAYLOADS.items():
        name = f"fixture_{key}.tar"
        (tmp_path / name).write_bytes(data)
        meta[key] = (name, hashlib.md5(data).hexdigest())
    return tmp_path, meta


def test_torchvision_table_is_the_default():
    from torchvision.datasets.imagenet import ARCHIVE_META

    assert imagenet.ARCHIVE_META is ARCHIVE_META
    assert ARCHIVE_META["val"] == ("ILSVRC2012_img_val.tar", "29b22e2961454d5413ddabcf34fc5622")
    assert ARCHIVE_META["devkit"][0] == "ILSVRC2012_devkit_t12.tar.gz"


def test_verified_report_lists_devkit_and_splits(fixture_root):
    root, meta = fixture_root
    lines = []
    report = imagenet.verify_imagenet(root, meta=meta, progress=lines.append)
    assert report["root"] == str(root)
    assert list(report["archives"]) == ["devkit", "train", "val"]
    for key, entry in report["archives"].items():
        assert entry == {"file": meta[key][0], "bytes": len(PAYLOADS[key]), "md5": meta[key][1],
                         "expected_md5": meta[key][1], "verified": True}
    assert len(lines) == 6 and all("imagenet:" in line for line in lines)


def test_subset_of_splits_still_checks_the_devkit(fixture_root):
    root, meta = fixture_root
    report = imagenet.verify_imagenet(root, ["val"], meta=meta)
    assert list(report["archives"]) == ["devkit", "val"]
    (root / meta["devkit"][0]).unlink()
    with pytest.raises(FileNotFoundError, match="devkit"):
        imagenet.verify_imagenet(root, ["val"], meta=meta)


def test_missing_archive_names_file_md5_and_image_net(fixture_root):
    root, meta = fixture_root
    (root / meta["train"][0]).unlink()
    (root / meta["val"][0]).unlink()
    with pytest.raises(imagenet.ImageNetArchiveMissing) as err:
        imagenet.verify_imagenet(root, meta=meta)
    msg = str(err.value)
    for key in ("train", "val"):
        assert meta[key][0] in msg and meta[key][1] in msg
    assert "not found" in msg and "image-net.org" in msg and "registration" in msg


def test_wrong_checksum_names_expected_and_found(fixture_root):
    root, meta = fixture_root
    bad = b"val archive, truncated?"
    (root / meta["val"][0]).write_bytes(bad)
    with pytest.raises(ChecksumError) as err:
        imagenet.verify_imagenet(root, meta=meta)
    msg = str(err.value)
    assert meta["val"][0] in msg and meta["val"][1] in msg and hashlib.md5(bad).hexdigest() in msg
    assert "image-net.org" in msg and meta["train"][0] not in msg


def test_unknown_split_is_rejected(fixture_root):
    root, meta = fixture_root
    with pytest.raises(ValueError, match="unknown split"):
        imagenet.verify_imagenet(root, ["test"], meta=meta)


def test_cli_writes_the_report(fixture_root, monkeypatch, capsys):
    root, meta = fixture_root
    monkeypatch.setattr(imagenet, "ARCHIVE_META", meta)
    out = root / "verified.json"
    imagenet.main(["verify", "--root", str(root), "--out", str(out), "--splits", "val"])
    report = json.loads(out.read_text())
    assert list(report["archives"]) == ["devkit", "val"]
    assert report["archives"]["val"]["verified"] is True
    assert json.loads(capsys.readouterr().out) == report
    assert not list(root.glob(".verified.json.*"))          # no temporary left behind


def test_cli_failure_writes_nothing(fixture_root, monkeypatch):
    root, meta = fixture_root
    monkeypatch.setattr(imagenet, "ARCHIVE_META", meta)
    (root / meta["train"][0]).write_bytes(b"nope")
    out = root / "verified.json"
    with pytest.raises(ChecksumError):
        imagenet.main(["verify", "--root", str(root), "--out", str(out)])
    assert not out.exists()


# --- extracted folders as datasets -------------------------------------------------------------

WNIDS = ("n01440764", "n01443537", "n01484850")


def write_image_folders(root, wnids=WNIDS, n_train=4, n_val=2, size=32, seed=0):
    """``root/train/<wnid>/*`` and ``root/val/<wnid>/*``: small random images, PNG and JPEG,
    of varying sizes (one greyscale); val files named ILSVRC2012_val_<k>.JPEG with k
    interleaving the classes, as in the real val set. Returns ``root``."""
    import torch
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    k = 0
    for split, n in (("train", n_train), ("val", n_val)):
        for j in range(n):
            for c, wnid in enumerate(wnids):
                folder = root / split / wnid
                folder.mkdir(parents=True, exist_ok=True)
                h, w = size + 4 * ((j + c) % 3), size + 8 * (j % 2)
                img = torch.randint(0, 256, (1 if (j, c) == (1, 2) else 3, h, w), dtype=torch.uint8, generator=g)
                img[:, : h // 2] //= (c + 1)                     # some class-dependent structure
                pil = Image.fromarray(img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy())
                if split == "val":
                    k += 1
                    name, fmt = f"ILSVRC2012_val_{k:08d}.JPEG", "JPEG"
                elif j % 2:
                    name, fmt = f"{wnid}_{j}.JPEG", "JPEG"
                else:
                    name, fmt = f"{wnid}_{j}.png", "PNG"
                pil.save(folder / name, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return root


def test_folders_give_train_and_val_with_the_sorted_wnid_order(tmp_path):
    import torch

    root = write_image_folders(tmp_path / "in1k", wnids=WNIDS[::-1])
    f = imagenet.ImageNetFolders(root)
    assert f.classes == sorted(WNIDS) and f.num_classes == 3
    assert f.val.classes == f.classes and f.val.class_to_idx == f.train.class_to_idx
    assert len(f.train) == 12 and len(f.val) == 6
    for dset in (f.train, f.val):
        for j in range(len(dset)):
            img, label = dset[j]
            path = dset.samples[j][0]
            assert isinstance(img, torch.Tensor) and img.dtype == torch.uint8 and img.shape[0] == 3
            assert label == f.classes.index(path.split("/")[-2])
    grey = next(j for j, (p, _) in enumerate(f.train.samples) if p.endswith(f"{WNIDS[2]}_1.JPEG"))
    assert f.train[grey][0].shape[0] == 3                      # greyscale JPEG read as RGB


def test_first_by_name_follows_the_val_file_numbers(tmp_path):
    f = imagenet.ImageNetFolders(write_image_folders(tmp_path))
    idx = imagenet.first_by_name(f.val, 4)
    names = [f.val.samples[j][0].rsplit("/", 1)[1] for j in idx]
    assert names == [f"ILSVRC2012_val_{k:08d}.JPEG" for k in range(1, 5)]
    assert len({f.val.samples[j][1] for j in idx[:3]}) == 3   # the first images span the classes
    assert sorted(imagenet.first_by_name(f.val, None)) == list(range(6))


def test_missing_folder_is_named(tmp_path):
    root = write_image_folders(tmp_path)
    shutil.rmtree(root / "val")
    with pytest.raises(FileNotFoundError) as err:
        imagenet.ImageNetFolders(root)
    assert str(root / "val") in str(err.value) and "extract" in str(err.value)
    assert str(root / "train") + "," not in str(err.value)


def test_val_classes_must_equal_train_classes(tmp_path):
    root = write_image_folders(tmp_path)
    (root / "val" / WNIDS[1]).rename(root / "val" / "n99999999")
    with pytest.raises(ValueError) as err:
        imagenet.ImageNetFolders(root)
    msg = str(err.value)
    assert str(root / "val") in msg and str(root / "train") in msg
    assert "n99999999" in msg and WNIDS[1] in msg


# --- extraction with torchvision's parsers replaced by fakes ------------------------------------

@pytest.fixture
def fake_parsers(monkeypatch):
    """Replace torchvision's three parsers; each call is recorded and creates what the real
    one would (meta.bin, <folder>/<wnid>/<image>)."""
    from torchvision.datasets import imagenet as tvi

    calls = []

    def devkit(root, file=None):
        calls.append(("devkit", root, {}))
        (Path(root) / tvi.META_FILE).write_bytes(b"meta")

    def split(name):
        def parse(root, file=None, folder=name, **kw):
            calls.append((name, root, {"folder": folder}))
            for wnid in WNIDS[:2]:
                d = Path(root) / folder / wnid
                d.mkdir(parents=True)
                (d / f"{name}_{wnid}.JPEG").write_bytes(b"x")
        return parse

    monkeypatch.setattr(tvi, "parse_devkit_archive", devkit)
    monkeypatch.setattr(tvi, "parse_train_archive", split("train"))
    monkeypatch.setattr(tvi, "parse_val_archive", split("val"))
    return calls


def test_extract_calls_the_parsers_with_the_root_and_a_partial_folder(tmp_path, fake_parsers):
    report = imagenet.extract_imagenet(tmp_path)
    assert fake_parsers == [("devkit", str(tmp_path), {}), ("train", str(tmp_path), {"folder": "train.partial"}),
                            ("val", str(tmp_path), {"folder": "val.partial"})]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.bin", "train", "val"]
    for split in ("train", "val"):
        assert report["splits"][split] == {"folder": str(tmp_path / split), "classes": 2, "images": 2,
                                           "extracted": True}
    assert (tmp_path / "val" / WNIDS[0] / f"val_{WNIDS[0]}.JPEG").is_file()


def test_extract_is_idempotent_and_redoes_only_missing_splits(tmp_path, fake_parsers):
    imagenet.extract_imagenet(tmp_path)
    fake_parsers.clear()
    report = imagenet.extract_imagenet(tmp_path)
    assert fake_parsers == [] and not any(s["extracted"] for s in report["splits"].values())
    shutil.rmtree(tmp_path / "val")
    (tmp_path / "val.partial" / "junk").mkdir(parents=True)          # a killed earlier run
    report = imagenet.extract_imagenet(tmp_path)
    assert fake_parsers == [("val", str(tmp_path), {"folder": "val.partial"})]   # meta.bin kept, train skipped
    assert not (tmp_path / "val.partial").exists() and not (tmp_path / "val" / "junk").exists()
    assert report["splits"]["val"]["extracted"] and not report["splits"]["train"]["extracted"]


def test_a_failed_extraction_leaves_no_split_folder(tmp_path, fake_parsers, monkeypatch):
    from torchvision.datasets import imagenet as tvi

    def broken(root, file=None, folder="train"):
        (Path(root) / folder / "n0").mkdir(parents=True)
        raise RuntimeError("The archive ILSVRC2012_img_train.tar is not present in the root directory or is corrupted.")

    monkeypatch.setattr(tvi, "parse_train_archive", broken)
    with pytest.raises(RuntimeError, match="corrupted"):
        imagenet.extract_imagenet(tmp_path, ["train"])
    assert not (tmp_path / "train").exists()
    with pytest.raises(ValueError, match="unknown split"):
        imagenet.extract_imagenet(tmp_path, ["test"])


def test_cli_extract_writes_the_report(tmp_path, fake_parsers, capsys):
    out = tmp_path / "extracted.json"
    imagenet.main(["extract", "--root", str(tmp_path), "--out", str(out), "--splits", "val"])
    report = json.loads(out.read_text())
    assert list(report["splits"]) == ["val"] and report["splits"]["val"]["images"] == 2
    assert [c[0] for c in fake_parsers] == ["devkit", "val"]
    assert json.loads(capsys.readouterr().out) == report


def test_read_rgb_converts_cmyk_and_rgba(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (9, 7, 4), dtype=np.uint8), mode="CMYK").save(tmp_path / "c.JPEG")
    Image.fromarray(rng.integers(0, 256, (9, 7, 4), dtype=np.uint8), mode="RGBA").save(tmp_path / "a.png")
    for name in ("c.JPEG", "a.png"):
        img = imagenet.read_rgb(str(tmp_path / name))
        assert img.shape == (3, 9, 7) and str(img.dtype) == "torch.uint8"
