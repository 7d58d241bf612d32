"""COCO 2017 downloader on a local fixture in COCO's layout, served from 127.0.0.1 (no real download)."""
import hashlib
import io
import json
import re
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from PIL import Image

from paperzoo.data import coco_download as cd
from paperzoo.data.coco import DetrTransforms, load_coco

IMAGE_IDS = (139, 285, 632)
# pycocotools 2.0.11 + numpy 2: harmless DeprecationWarning on every mask decode
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut: dict[str, int] = {}       # path → bytes to send before hanging up (next request only)
        self.ranges = True

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        srv: _Server = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = int(re.match(r"bytes=(\d+)-", rng).group(1)) if rng and srv.ranges else 0
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = srv.cut.pop(self.path, None)
        self.wfile.write(body[:cut] if cut is not None else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _jpeg(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


def _fixture_archives() -> dict[str, bytes]:
    """val2017.zip and annotations_trainval2017.zip in COCO's own layout (3 images, 2 classes)."""
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 48, "height": 40} for i in IMAGE_IDS]
    anns = [{"id": 1, "image_id": 139, "category_id": 18, "bbox": [4, 5, 20, 10], "area": 200.0, "iscrowd": 0,
             "segmentation": [[4, 5, 24, 5, 24, 15, 4, 15]]},
            {"id": 2, "image_id": 285, "category_id": 1, "bbox": [10, 10, 30, 20], "area": 600.0, "iscrowd": 0,
             "segmentation": [[10, 10, 40, 10, 40, 30, 10, 30]]},
            {"id": 3, "image_id": 285, "category_id": 1, "bbox": [0, 0, 48, 40], "area": 1920.0, "iscrowd": 1,
             "segmentation": {"size": [40, 48], "counts": [0, 1920]}}]
    instances = {"images": images, "annotations": anns,
                 "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]}
    return {
        "val2017.zip": _zip({f"val2017/{i:012d}.jpg": _jpeg(i) for i in IMAGE_IDS}),
        "annotations_trainval2017.zip": _zip({"annotations/instances_val2017.json": json.dumps(instances).encode()}),
    }


def _catalog(server, archives, *, sha=True):
    cat = {}
    for name, data in archives.items():
        path = f"/files/{name}"
        server.files[path] = data
        cat[name] = cd.RemoteFile(name, server.base + path, len(data),
                                  hashlib.sha256(data).hexdigest() if sha else None)
    return cat


def test_fetch_extract_and_verify_fixture(server, tmp_path):
    archives = _fixture_archives()
    cat = _catalog(server, archives)
    report = cd.fetch_coco(tmp_path, list(archives), catalog=cat)
    assert report["val2017.zip"]["extracted"] == ["val2017"]
    assert report["annotations_trainval2017.zip"]["extracted"] == ["annotations"]
    assert sorted(p.name for p in (tmp_path / "val2017").iterdir()) == [f"{i:012d}.jpg" for i in IMAGE_IDS]
    assert (tmp_path / "downloads" / "val2017.zip").read_bytes() == archives["val2017.zip"]
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.glob(".extract-*"))
    v = cd.verify_coco(tmp_path, ["val2017"], {"val2017": 3})
    assert v["val2017"] == {"images": 3, "annotations": 3, "categories": 2, "unlisted_files": 0}
    with pytest.raises(ValueError, match="expected 5000"):
        cd.verify_coco(tmp_path, ["val2017"])                       # real COCO counts
    (tmp_path / "val2017" / "000000000632.jpg").unlink()
    with pytest.raises(ValueError, match="missing"):
        cd.verify_coco(tmp_path, ["val2017"], None)
    # a second fetch re-downloads and re-extracts nothing
    n = len(server.requests)
    cd.fetch_coco(tmp_path, ["val2017.zip"], catalog=cat)
    assert len(server.requests) == n


def test_verify_cli_writes_report(server, tmp_path):
    archives = _fixture_archives()
    cd.fetch_coco(tmp_path, list(archives), catalog=_catalog(server, archives))
    out = tmp_path / "verified.json"
    params = json.dumps({"root": str(tmp_path), "files": [], "allow_unverified": False})
    with pytest.raises(ValueError, match="expected 5000"):   # the CLI checks real COCO's image counts
        cd.main(["verify", "--params", params, "--splits", "val2017", "--out", str(out)])
    assert not out.exists()
    cd.main(["verify", "--params", params, "--splits", "val2017", "--out", str(out), "--skip-count-check"])
    assert json.loads(out.read_text())["splits"]["val2017"]["images"] == 3


def test_interrupted_download_resumes_with_range(server, tmp_path):
    data = bytes(np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8))
    server.files["/zips/big.zip"] = data
    server.cut["/zips/big.zip"] = 120_000
    url, dest, sha = server.base + "/zips/big.zip", tmp_path / "big.zip", hashlib.sha256(data).hexdigest()
    with pytest.raises(cd.DownloadError, match="120000 of 300000 bytes"):
        cd.download(url, dest, size=len(data), sha256=sha, retries=0, chunk=4096)
    part = tmp_path / "big.zip.part"
    assert part.stat().st_size == 120_000 and not dest.exists()
    cd.download(url, dest, size=len(data), sha256=sha, retries=0, chunk=4096)
    assert dest.read_bytes() == data and not part.exists()
    assert server.requests[-1] == ("/zips/big.zip", "bytes=120000-")
    # retries resume inside one call too
    server.cut["/zips/big.zip"] = 1000
    dest.unlink()
    cd.download(url, dest, size=len(data), sha256=sha, retries=2, chunk=4096)
    assert dest.read_bytes() == data and server.requests[-1] == ("/zips/big.zip", "bytes=1000-")


def test_server_without_range_support_restarts_from_zero(server, tmp_path):
    data = b"x" * 5000
    server.files["/f"] = data
    server.ranges = False
    (tmp_path / "f.part").write_bytes(b"garbage")
    cd.download(server.base + "/f", tmp_path / "f", size=5000, sha256=hashlib.sha256(data).hexdigest(), retries=0)
    assert (tmp_path / "f").read_bytes() == data


def test_checksums_are_enforced(server, tmp_path):
    data = b"payload" * 100
    server.files["/f"] = data
    url = server.base + "/f"
    with pytest.raises(cd.ChecksumError, match="SHA-256"):
        cd.download(url, tmp_path / "f", size=len(data), sha256="0" * 64, retries=0)
    assert not (tmp_path / "f").exists() and not (tmp_path / "f.part").exists()
    n = len(server.requests)
    with pytest.raises(cd.ChecksumError, match="refusing to download"):
        cd.download(url, tmp_path / "f", size=len(data), sha256=None)
    assert len(server.requests) == n                                  # refused before any request
    cd.download(url, tmp_path / "f", size=len(data), sha256=None, allow_unverified=True)
    assert (tmp_path / "f").read_bytes() == data
    with pytest.raises(cd.ChecksumError, match="bytes, expected"):
        cd.verify_file(tmp_path / "f", size=1, sha256=None, allow_unverified=True)


def test_only_https_or_loopback_urls():
    cd.check_url("https://s3.amazonaws.com/images.cocodataset.org/zips/val2017.zip")
    cd.check_url("http://127.0.0.1:8000/x.zip")
    for bad in ("http://images.cocodataset.org/zips/val2017.zip", "ftp://x/y", "file:///etc/passwd"):
        with pytest.raises(ValueError, match="only https"):
            cd.check_url(bad)


def test_real_catalog_is_complete_and_never_fetched_here():
    assert set(cd.COCO2017) == {"train2017.zip", "val2017.zip", "annotations_trainval2017.zip"}
    for rf in cd.COCO2017.values():
        assert rf.url.startswith("https://") and rf.size > 0 and rf.official_url.startswith("http://images.cocodataset.org/")
        assert re.fullmatch(r"[0-9a-f]{64}", rf.sha256) and re.fullmatch(r"[0-9a-f]{32}", rf.md5)
    assert cd.COCO2017["val2017.zip"].size == 815_585_330


@pytest.mark.parametrize("name", ["../evil.txt", "val2017/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt",
                                  "val2017\\..\\evil.txt"])
def test_path_traversal_archives_are_rejected(tmp_path, name):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip({"val2017/ok.jpg": b"fine", name: b"evil"}))
    dest = tmp_path / "root" / "sub"
    with pytest.raises(cd.UnsafeArchiveError, match="unsafe archive member"):
        cd.safe_extract(archive, dest)
    assert not list(tmp_path.rglob("evil.txt")) and not (dest / "val2017").exists()   # nothing extracted


def test_symlink_members_are_rejected(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("val2017/link.jpg")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    (tmp_path / "sym.zip").write_bytes(buf.getvalue())
    with pytest.raises(cd.UnsafeArchiveError, match="symlink"):
        cd.safe_extract(tmp_path / "sym.zip", tmp_path / "out")


def test_fetch_refuses_unverified_and_traversal_archives(server, tmp_path):
    evil = _zip({"annotations/../../evil.json": b"{}"})
    cat = _catalog(server, {"annotations_trainval2017.zip": evil})
    with pytest.raises(cd.UnsafeArchiveError):
        cd.fetch_coco(tmp_path / "root", ["annotations_trainval2017.zip"], catalog=cat)
    assert not list(tmp_path.rglob("evil.json"))
    cat = _catalog(server, _fixture_archives(), sha=False)
    with pytest.raises(cd.ChecksumError, match="allow_unverified"):
        cd.fetch_coco(tmp_path / "root2", ["val2017.zip"], catalog=cat)


def test_loader_reads_the_extracted_fixture_with_detr_transforms(server, tmp_path):
    archives = _fixture_archives()
    cd.fetch_coco(tmp_path, list(archives), catalog=_catalog(server, archives))
    val = load_coco(tmp_path, "val2017", train=False, transforms=DetrTransforms(False, val_size=20, max_size=100),
                    return_masks=True)
    assert len(val) == 3 and val.class_names == ["person", "dog"] and val.category_ids == [1, 18]
    x, t = val[0]                                                   # image 139: one dog, 40×48 → 20×24
    assert x.shape == (3, 20, 24) and x.dtype == torch.float32 and t["size"].tolist() == [20, 24]
    assert t["labels"].tolist() == [1] and t["orig_size"].tolist() == [40, 48]
    torch.testing.assert_close(t["boxes"], torch.tensor([[14 / 48, 10 / 40, 20 / 48, 10 / 40]]))
    assert t["masks"].shape == (1, 20, 24)
    _, t285 = val[1]
    assert t285["labels"].tolist() == [0]                           # the crowd annotation is dropped
    train = load_coco(tmp_path, "val2017", train=True, transforms=DetrTransforms(
        True, train_scales=[24, 32], max_size=64, crop_scales=[30], crop_min=16, crop_max=24,
        generator=torch.Generator().manual_seed(0)), return_masks=True)
    for images, targets, pad_mask in train.batches(3):
        assert images.shape[0] == 3 and (pad_mask is None or pad_mask.shape == (3, *images.shape[2:]))
        for t in targets:
            b = t["boxes"]
            assert ((b >= 0) & (b <= 1 + 1e-6)).all() and len(b) == len(t["labels"]) == len(t["masks"])


def test_square_coco_set_keeps_normalised_boxes_and_original_sizes(server, tmp_path):
    from paperzoo.data.coco import SquareCocoSet

    archives = _fixture_archives()
    cd.fetch_coco(tmp_path, list(archives), catalog=_catalog(server, archives))
    ds = SquareCocoSet(tmp_path, "val2017", 32)
    assert len(ds) == 3 and ds.num_classes == 2 and ds.category_ids == [1, 18]
    x = ds.images[torch.tensor([0, 2])]
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.uint8
    t = ds.targets[0]                                               # image 139: one dog, 40×48
    assert t["orig_size"].tolist() == [40, 48] and t["labels"].tolist() == [1]
    torch.testing.assert_close(t["boxes"], torch.tensor([[14 / 48, 10 / 40, 20 / 48, 10 / 40]]))
    assert len(ds.targets[0:2]) == 2 and ds.images[0:2].shape[0] == 2
    sub = ds.subset(range(1, 3))
    assert sub.image_ids == ds.image_ids[1:] and sub.targets[0]["labels"].tolist() == [0]   # crowd dropped
