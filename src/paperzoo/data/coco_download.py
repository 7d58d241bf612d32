"""COCO 2017 for the ``paper`` scale: resumable download, checksum, safe extraction, verification.

    python -m paperzoo.data.coco_download fetch  --params P [--root DIR] [--files NAME ...]
    python -m paperzoo.data.coco_download verify --params P [--root DIR] --out DIR/verified.json

``P`` is the ``data.coco`` config block (JSON text or file): ``root``, ``files``,
``allow_unverified``. ``fetch`` downloads each archive to ``<root>/downloads/<name>``
and extracts it into ``<root>`` (COCO's layout: ``annotations/instances_<split>.json``,
``<split>/<id:012d>.jpg``); ``verify`` checks that layout and writes a small JSON report
last, atomically (the Snakemake output of the paper-scale data rule).

**Sources and checksums.** cocodataset.org lists ``http://images.cocodataset.org/...``
(plain HTTP; that host's certificate is S3's, so ``https://images.cocodataset.org`` fails
hostname verification). The same S3 bucket is served over HTTPS at
``https://s3.amazonaws.com/images.cocodataset.org/...``, which is what we download.
COCO publishes no checksums. Sizes, MD5s and SHA-256s below were cross-checked in
several independent public sources (dataset catalogues such as TensorFlow Datasets and
ParlAI, and download records that verified the archives); each value was found in at
least two of them. Integrity never rests on the transport: size and SHA-256 are checked
before an archive is used. An entry whose ``sha256`` is ``None`` refuses to download
unless ``allow_unverified=True`` is passed explicitly.

**Resuming.** Bytes arrive in ``<name>.part``; a later call (or a retry) asks for the rest
with an HTTP ``Range`` header and appends if the server answers 206 with the matching
``Content-Range``; a 200 answer restarts from zero. Only a complete, verified file is
renamed to ``<name>``.

**Safe extraction.** Every member is checked before anything is written: absolute paths,
drive letters, backslashes, ``..`` components, symlinks and other special files, and
names resolving outside the target are rejected (:class:`UnsafeArchiveError`); members
are extracted into a temporary folder inside the target and moved into place.

Only HTTPS URLs are accepted (redirects included); plain HTTP is allowed for loopback
hosts only, which is how the tests serve a fixture archive.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from paperzoo.engine.io import read_json, read_params, write_json, write_text

from .store import sha256_file


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable archive: where from, how big, which hash."""

    name: str
    url: str                      # HTTPS download URL
    size: int | None              # bytes
    sha256: str | None            # None → refuses to download unless allow_unverified
    md5: str | None = None        # informational (the hash most public scripts check)
    official_url: str = ""        # as listed on cocodataset.org/#download


_S3 = "https://s3.amazonaws.com/images.cocodataset.org"
_OFFICIAL = "http://images.cocodataset.org"
COCO2017: dict[str, RemoteFile] = {
    "annotations_trainval2017.zip": RemoteFile(
        "annotations_trainval2017.zip", f"{_S3}/annotations/annotations_trainval2017.zip", 252_907_541,
        "113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268", "f4bbac642086de4f52a3fdda2de5fa2c",
        f"{_OFFICIAL}/annotations/annotations_trainval2017.zip"),
    "val2017.zip": RemoteFile(
        "val2017.zip", f"{_S3}/zips/val2017.zip", 815_585_330,
        "4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05", "442b8da7639aecaf257c1dceb8ba8c80",
        f"{_OFFICIAL}/zips/val2017.zip"),
    "train2017.zip": RemoteFile(
        "train2017.zip", f"{_S3}/zips/train2017.zip", 19_336_861_798,
        "69a8bb58ea5f8f99d24875f21416de2e9ded3178e903f1f7603e283b9e06d929", "cced6f7f71b7629ddf16f17bbcfab6b2",
        f"{_OFFICIAL}/zips/train2017.zip"),
}
EXPECTED_IMAGES = {"train2017": 118_287, "val2017": 5_000}   # images per split in instances_<split>.json
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


class DownloadError(RuntimeError):
    """A download that did not complete (the ``.part`` file is kept for resuming)."""


class ChecksumError(RuntimeError):
    """Wrong size or SHA-256, or no SHA-256 to check against."""


class UnsafeArchiveError(ValueError):
    """An archive member that would escape the target folder or is not a plain file/folder."""


def check_url(url: str) -> None:
    """Accept ``https://`` URLs, and ``http://`` only on a loopback host (test fixtures)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return
    raise ValueError(f"refusing to download {url!r}: only https:// URLs are allowed")


class _HttpsOnlyRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_HttpsOnlyRedirect())


def verify_file(path: str | os.PathLike, *, size: int | None, sha256: str | None,
                allow_unverified: bool = False, md5: str | None = None) -> str:
    """Check ``path`` against the expected size and SHA-256 (or, where only an MD5 is
    published, e.g. CIFAR's, that MD5); returns the actual SHA-256."""
    path = Path(path)
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise ChecksumError(f"{path}: {actual_size} bytes, expected {size}")
    digest = sha256_file(path)
    if sha256 is not None:
        if digest != sha256.lower():
            raise ChecksumError(f"{path}: SHA-256 {digest}, expected {sha256}")
    elif md5 is not None:
        actual_md5 = md5_file(path)
        if actual_md5 != md5.lower():
            raise ChecksumError(f"{path}: MD5 {actual_md5}, expected {md5}")
    elif not allow_unverified:
        raise ChecksumError(f"{path}: no expected SHA-256 to check against (sha256 {digest}); "
                            f"pass allow_unverified=True to accept it anyway")
    return digest


def md5_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _fetch_once(url: str, part: Path, *, timeout: float, chunk: int, progress: Callable[[int], None] | None) -> None:
    """One HTTP request appending to ``part`` from its current size (Range) or rewriting it."""
    offset = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "paperzoo-downloader",
                                               **({"Range": f"bytes={offset}-"} if offset else {})})
    try:
        resp = _opener().open(req, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:      # nothing left to send: the size check decides
            return
        raise
    with resp:
        if offset and resp.status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                raise DownloadError(f"{url}: asked for bytes {offset}-, got Content-Range "
                                    f"{resp.headers.get('Content-Range')!r}")
            mode = "ab"
        else:                               # 200: the server sends the whole file
            offset, mode = 0, "wb"
        with open(part, mode) as fh:
            done = offset
            while True:
                block = resp.read(chunk)
                if not block:
                    break
                fh.write(block)
                done += len(block)
                if progress:
                    progress(done)


def download(url: str, dest: str | os.PathLike, *, size: int | None, sha256: str | None,
             allow_unverified: bool = False, md5: str | None = None, retries: int = 3, timeout: float = 60.0, chunk: int = 1 << 20,
             progress: Callable[[int], None] | None = None) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified); returns ``dest``.

    An existing ``dest`` that verifies is kept. Network errors are retried ``retries``
    times, each retry resuming from the ``.part`` file; a short file after that raises
    :class:`DownloadError` and keeps ``.part``; a wrong SHA-256 removes ``.part`` and raises
    :class:`ChecksumError`.
    """
    check_url(url)
    if sha256 is None and md5 is None and not allow_unverified:
        raise ChecksumError(f"{url}: no expected SHA-256 (TODO: verify and record it); "
                            f"refusing to download without allow_unverified=True")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        verify_file(dest, size=size, sha256=sha256, allow_unverified=allow_unverified, md5=md5)
        return dest
    part = dest.with_name(dest.name + ".part")
    if part.exists() and size is not None and part.stat().st_size > size:
        part.unlink()                       # longer than the real file: start again
    last_error: Exception | None = None
    for _attempt in range(retries + 1):
        if size is not None and part.exists() and part.stat().st_size == size:
            break
        try:
            _fetch_once(url, part, timeout=timeout, chunk=chunk, progress=progress)
            last_error = None
            if size is None or (part.exists() and part.stat().st_size == size):
                break
        except _NETWORK_ERRORS as err:
            last_error = err
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have != size:
        raise DownloadError(f"{url}: {have} of {size} bytes after {retries + 1} attempt(s) "
                            f"({last_error!r}); run again to resume from {part}")
    if last_error is not None:
        raise DownloadError(f"{url}: {last_error!r}")
    try:
        verify_file(part, size=size, sha256=sha256, allow_unverified=allow_unverified, md5=md5)
    except ChecksumError:
        part.unlink()
        raise
    os.replace(part, dest)
    return dest


# --- extraction --------------------------------------------------------------------------------

def check_member(info: zipfile.ZipInfo) -> str:
    """The member's relative path if it is safe to extract; raises :class:`UnsafeArchiveError`."""
    name = info.filename
    mode = info.external_attr >> 16
    problems = []
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        problems.append("absolute path")
    if "\\" in name:
        problems.append("backslash in name")
    if any(part == ".." for part in name.split("/")):
        problems.append("'..' component")
    if "\x00" in name:
        problems.append("NUL in name")
    if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        problems.append("symlink" if stat.S_ISLNK(mode) else f"special file (mode {oct(mode)})")
    if problems:
        raise UnsafeArchiveError(f"unsafe archive member {name!r}: {', '.join(problems)}")
    return name


def safe_extract(zip_path: str | os.PathLike, dest: str | os.PathLike, *, max_bytes: int | None = None) -> list[str]:
    """Extract ``zip_path`` into ``dest`` after checking every member; returns the top-level names.

    Existing top-level entries of the same name in ``dest`` are replaced. ``max_bytes``
    bounds the total uncompressed size (zip bombs).
    """
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
        for info in infos:
            rel = check_member(info)
            if dest not in (dest / rel).resolve().parents and (dest / rel).resolve() != dest:
                raise UnsafeArchiveError(f"unsafe archive member {rel!r}: resolves outside {dest}")
        total = sum(i.file_size for i in infos)
        if max_bytes is not None and total > max_bytes:
            raise UnsafeArchiveError(f"{zip_path}: {total} bytes uncompressed, more than the allowed {max_bytes}")
        tmp = dest / f".extract-{Path(zip_path).name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            for info in infos:
                target = tmp / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            tops = sorted(p.name for p in tmp.iterdir())
            for top in tops:
                final = dest / top
                if final.is_dir() and not final.is_symlink():
                    shutil.rmtree(final)
                elif final.exists() or final.is_symlink():
                    final.unlink()
                os.replace(tmp / top, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return tops


# --- COCO ----------------------------------------------------------------------------------------

def fetch_coco(root: str | os.PathLike, files: Sequence[str], *, catalog: Mapping[str, RemoteFile] = COCO2017,
               allow_unverified: bool = False, extract: bool = True, retries: int = 3,
               progress: bool = False) -> dict:
    """Download (resumable, verified) and extract each archive of ``files`` into ``root``.

    An archive already extracted from the same SHA-256 (marker ``<root>/.<name>.extracted``)
    is not extracted again. Returns ``{name: {"sha256", "extracted": [top-level names]}}``.
    """
    root = Path(root)
    unknown = [f for f in files if f not in catalog]
    if unknown:
        raise KeyError(f"unknown archive(s) {unknown}; known: {sorted(catalog)}")
    report = {}
    for name in files:
        rf = catalog[name]
        show = _progress_printer(name, rf.size) if progress else None
        path = download(rf.url, root / "downloads" / name, size=rf.size, sha256=rf.sha256,
                        allow_unverified=allow_unverified, retries=retries, progress=show)
        digest = rf.sha256 or sha256_file(path)
        marker = root / f".{name}.extracted"
        done = json.loads(marker.read_text()) if marker.exists() else {}
        if extract and done.get("sha256") != digest:
            done = {"sha256": digest, "top": safe_extract(path, root)}
            write_text(marker, json.dumps(done) + "\n")
        report[name] = {"sha256": digest, "extracted": done.get("top", [])}
    return report


def verify_coco(root: str | os.PathLike, splits: Sequence[str],
                expected_images: Mapping[str, int] | None = EXPECTED_IMAGES) -> dict:
    """Check COCO's layout under ``root``: per split, the instances JSON lists exactly the image
    files present in ``<split>/`` (and ``expected_images[split]`` of them, if given).
    Returns a report; raises ``FileNotFoundError`` / ``ValueError`` naming what is wrong."""
    root = Path(root)
    report = {}
    for split in splits:
        ann = root / "annotations" / f"instances_{split}.json"
        d = read_json(ann)
        listed = {im["file_name"] for im in d["images"]}
        img_dir = root / split
        if not img_dir.is_dir():
            raise FileNotFoundError(f"{img_dir}: image folder of {split} missing")
        present = {p.name for p in img_dir.iterdir() if p.is_file()}
        missing, extra = sorted(listed - present), sorted(present - listed)
        if missing:
            raise ValueError(f"{split}: {len(missing)} image(s) listed in {ann.name} are missing, e.g. {missing[:3]}")
        want = (expected_images or {}).get(split)
        if want is not None and len(listed) != want:
            raise ValueError(f"{split}: {len(listed)} images in {ann.name}, expected {want}")
        report[split] = {"images": len(listed), "annotations": len(d["annotations"]),
                         "categories": len(d["categories"]), "unlisted_files": len(extra)}
    return report


def _progress_printer(name: str, size: int | None) -> Callable[[int], None]:
    state = {"next": 0}

    def show(done: int) -> None:
        if done >= state["next"]:
            pct = f" ({100 * done / size:.0f}%)" if size else ""
            print(f"{name}: {done / 2**20:.0f} MiB{pct}", file=sys.stderr, flush=True)
            state["next"] = done + 256 * 2**20
    return show


def coco_fetch_from_config(block: dict) -> dict:
    return {"root": Path(block["root"]), "files": list(block["files"]),
            "allow_unverified": bool(block["allow_unverified"])}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=("fetch", "verify"))
    ap.add_argument("--params", required=True, help="the data.coco config block: JSON text or a JSON file")
    ap.add_argument("--root", type=Path, help="overrides the block's root")
    ap.add_argument("--files", nargs="+", help="fetch: archives to fetch (default: the block's files)")
    ap.add_argument("--splits", nargs="+", default=["train2017", "val2017"], help="verify: splits to check")
    ap.add_argument("--out", type=Path, help="verify: report JSON (written last, atomically)")
    ap.add_argument("--skip-count-check", action="store_true",
                    help="verify: do not require COCO 2017's image counts (subsets, fixtures)")
    args = ap.parse_args(argv)
    kw = coco_fetch_from_config(read_params(args.params))
    root = args.root or kw["root"]
    if args.step == "fetch":
        report = fetch_coco(root, args.files or kw["files"], allow_unverified=kw["allow_unverified"], progress=True)
        print(json.dumps(report, indent=2))
    else:
        expected = None if args.skip_count_check else EXPECTED_IMAGES
        report = {"root": str(root), "splits": verify_coco(root, args.splits, expected)}
        if args.out:
            write_json(args.out, report)
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
