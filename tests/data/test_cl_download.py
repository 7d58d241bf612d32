"""CIFAR-100 / ImageNet-R fetchers on local fixtures in the real formats, served from 127.0.0.1."""
import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest

from paperzoo.data import cl_download as cl
from paperzoo.data.coco_download import ChecksumError, RemoteFile, UnsafeArchiveError
from paperzoo.engine.io import read_json
from tests.data.test_coco_download import server  # noqa: F401  (the 127.0.0.1 HTTP fixture)


def _tar(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _jpeg(label: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10) if label else (10, 10, 200)).save(buf, format="JPEG")
    return buf.getvalue()


def _cifar_tar(n=6) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    batch = {b"data": data, b"fine_labels": [i % 3 for i in range(n)], b"coarse_labels": [0] * n,
             b"filenames": [b"x.png"] * n, b"batch_label": b"training batch 1 of 1"}
    meta = {b"fine_label_names": [b"apple", b"aquarium_fish", b"baby"], b"coarse_label_names": [b"a"]}
    members = {"cifar-100-python/train": pickle.dumps(batch, protocol=2),
               "cifar-100-python/test": pickle.dumps(batch, protocol=2),
               "cifar-100-python/meta": pickle.dumps(meta, protocol=2)}
    return _tar(members), data


def _catalog(srv, files: dict[str, bytes], md5: bool = True) -> dict:
    out = {}
    for name, data in files.items():
        srv.files[f"/{name}"] = data
        out[name] = RemoteFile(name, f"{srv.base}/{name}", size=len(data), sha256=None,
                               md5=hashlib.md5(data).hexdigest() if md5 else None)
    return out


def test_cifar100_fetch_verifies_md5_and_writes_the_store(server, tmp_path):  # noqa: F811
    blob, data = _cifar_tar()
    cat = {"cifar100": _catalog(server, {"cifar-100-python.tar.gz": blob})}
    m = cl.fetch("cifar100", tmp_path, catalog=cat)
    images = np.load(tmp_path / "train_images.npy")
    assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images[1, :, :, 0].ravel(), data[1, :1024])          # channel-major → HWC
    assert np.load(tmp_path / "test_labels.npy").tolist() == [0, 1, 2, 0, 1, 2]
    from paperzoo.data.sets import load_classification
    from paperzoo.studies.lae.benchmark import load_benchmark

    test = load_classification(tmp_path, "test")
    assert test.class_names[1] == "aquarium_fish" and tuple(test.images.shape) == (6, 3, 32, 32)
    bench = load_benchmark("cifar100", tmp_path, n_tasks=1, classes_per_task=3, seed=0)
    assert bench.n_tasks == 1 and len(bench.train) == 6
    assert m["counts"] == {"train": 6, "test": 6} and m["files"]["cifar-100-python.tar.gz"]["verified_by"] == "md5"


def test_wrong_md5_is_refused(server, tmp_path):  # noqa: F811
    blob, _ = _cifar_tar()
    server.files["/c.tar.gz"] = blob
    cat = {"cifar100": {"cifar-100-python.tar.gz": RemoteFile("c", f"{server.base}/c.tar.gz", size=None,
                                                              sha256=None, md5="0" * 32)}}
    with pytest.raises(ChecksumError, match="MD5"):
        cl.fetch("cifar100", tmp_path, catalog=cat)
    assert not (tmp_path / "downloads" / "cifar-100-python.tar.gz").exists()


def test_imagenet_r_needs_allow_unverified_and_checks_the_lists(server, tmp_path):  # noqa: F811
    tar = _tar({"imagenet-r/n01443537/art_0.jpg": _jpeg(0), "imagenet-r/n01484850/art_1.jpg": _jpeg(1)}, mode="w")
    files = {"imagenet-r.tar": tar, "train_list.txt": b"imagenet-r/n01443537/art_0.jpg 0\n",
             "val_list.txt": b"imagenet-r/n01484850/art_1.jpg 1\n"}
    cat = {"imagenet_r": _catalog(server, files, md5=False)}
    with pytest.raises(ChecksumError, match="allow_unverified"):
        cl.fetch("imagenet_r", tmp_path, catalog=cat)
    m = cl.fetch("imagenet_r", tmp_path, catalog=cat, allow_unverified=True, image_size=24)
    assert m["counts"] == {"train": 1, "test": 1} and m["num_classes"] == 2
    assert m["files"]["imagenet-r.tar"]["verified_by"] == "nothing (allow_unverified)"
    paths, labels = cl.load_imagenet_r(tmp_path, "val")
    assert paths[0].read_bytes() == _jpeg(1) and labels.tolist() == [1]
    test = np.load(tmp_path / "test_images.npy")
    assert test.shape == (1, 24, 24, 3) and abs(int(test[..., 0].mean()) - 200) < 8   # label 1 is red
    assert read_json(tmp_path / "classes.json")["splits"]["test"]["class_names"] == ["n01443537", "n01484850"]
    server.files["/val_list.txt"] = b"imagenet-r/missing.jpg 3\n"
    (tmp_path / "downloads" / "val_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="1 listed images missing"):
        cl.fetch("imagenet_r", tmp_path, image_size=24, catalog={"imagenet_r": {**cat["imagenet_r"], "val_list.txt": RemoteFile(
            "val_list.txt", f"{server.base}/val_list.txt", size=None, sha256=None)}}, allow_unverified=True)


@pytest.mark.parametrize("name,kind", [("../evil", tarfile.REGTYPE), ("/abs", tarfile.REGTYPE),
                                       ("link", tarfile.SYMTYPE), ("fifo", tarfile.FIFOTYPE)])
def test_unsafe_tar_members_are_rejected_before_writing(tmp_path, name, kind):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        bad = tarfile.TarInfo(name)
        bad.type = kind
        if kind == tarfile.SYMTYPE:
            bad.linkname = "/etc/passwd"
        tf.addfile(bad, io.BytesIO(b""))
    (tmp_path / "a.tar").write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchiveError):
        cl.safe_extract_tar(tmp_path / "a.tar", tmp_path / "out")
    assert not (tmp_path / "out" / "fine.txt").exists()


def test_restricted_unpickler_refuses_arbitrary_objects(tmp_path):
    f = tmp_path / "evil"
    f.write_bytes(pickle.dumps({b"x": print}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        cl.read_cifar_batch(f)


def test_split_list_rejects_paths_leaving_the_root(tmp_path):
    f = tmp_path / "l.txt"
    f.write_text("../../etc/passwd 1\n")
    with pytest.raises(ValueError, match="leaves the data root"):
        cl.read_split_list(f)
