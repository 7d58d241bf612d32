"""The workflow itself: lint, paper-scale dry run, the whole `tiny` DAG end to end, and its
report opened in a real (headless) browser."""
import html as htmllib
import json
import os
import re
import shutil
import subprocess

import pytest

from paperzoo.engine.claims import NOT_RUN, STATUSES

from .helpers import REPO, copy_workflow, snakemake


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One full `tiny` run shared by the tests below."""
    root = copy_workflow(tmp_path_factory.mktemp("tiny"))
    snakemake(root, "--config", "scale=tiny", "--cores", "2")
    return root


@pytest.mark.slow
def test_lint_passes(tmp_path):
    copy_workflow(tmp_path)
    proc = snakemake(tmp_path, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_paper_scale_dry_runs_without_data(tmp_path):
    copy_workflow(tmp_path)
    proc = snakemake(tmp_path, "-n", "--config", "scale=paper")
    assert "interface_phonons_md" in proc.stdout
    proc = snakemake(tmp_path, "-n", "data", "--config", "scale=paper")
    assert "data_coco" in proc.stdout  # the real COCO download + verification step


@pytest.mark.slow
def test_tiny_datasets_generate_with_manifests(tiny):
    snakemake(tiny, "data", "--config", "scale=tiny", "--cores", "2")
    for name in ("shapes", "classes", "digits"):
        manifest = json.loads((tiny / f"results/data/{name}/tiny/manifest.json").read_text())
        assert manifest["files"], name


@pytest.mark.slow
def test_tiny_dag_writes_claims_report_and_figures(tiny):
    claims = json.loads((tiny / "results/interface_phonons/tiny/claims.json").read_text())
    assert claims["study"] == "interface_phonons" and claims["scale"] == "tiny"
    for c in claims["claims"]:
        assert {"id", "kind", "statement", "test", "verdict", "ours", "paper", "note"} <= set(c)
        assert c["verdict"] in STATUSES
        if c["verdict"] != NOT_RUN:
            assert {"mean", "std", "n", "by_seed"} <= set(c["ours"]["lhs"])
    metrics = json.loads((tiny / "results/interface_phonons/tiny/metrics.json").read_text())
    assert set(metrics["arms"]) >= {"elastic", "localized", "md"}
    report = tiny / "results/report/tiny"
    html = (report / "index.html").read_text()
    md = (report / "claims.md").read_text()
    for c in claims["claims"]:
        assert c["statement"].replace("|", "\\|") in md
    for fig in ("fig_transmission_vs_T", "fig_conductance_vs_T", "fig_localization_vs_T"):
        assert (tiny / f"results/interface_phonons/tiny/figures/{fig}.png").stat().st_size > 1000
        assert fig in html
    assert (report / "claims.csv").read_text().startswith("study,scale,id,")


@pytest.mark.slow
def test_nothing_to_do_then_targeted_reruns(tiny):
    dry = snakemake(tiny, "-n", "--config", "scale=tiny")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    # -R reruns one rule and what depends on it, not its siblings
    dry = snakemake(tiny, "-n", "--config", "scale=tiny", "-R", "interface_phonons_localized")
    assert "interface_phonons_localized" in dry.stdout and "interface_phonons_md " not in dry.stdout
    # one figure target rebuilds after deletion
    fig = tiny / "results/interface_phonons/tiny/figures/fig_conductance_vs_T.png"
    fig.unlink()
    snakemake(tiny, "--config", "scale=tiny", "--cores", "1", str(fig.relative_to(tiny)))
    assert fig.exists()


@pytest.mark.slow
def test_same_inputs_same_metrics(tiny):
    """A forced rerun of the MD step gives the same aggregate, digit for digit, except its
    provenance (the runs' summed wall time differs by nature; the runs and commit do not)."""
    path = tiny / "results/interface_phonons/tiny/metrics.json"
    before = json.loads(path.read_text())
    snakemake(tiny, "--config", "scale=tiny", "--cores", "2", "--forcerun", "interface_phonons_md")
    after = json.loads(path.read_text())
    prov_b, prov_a = before.pop("provenance"), after.pop("provenance")
    assert after == before
    assert {k: v for k, v in prov_a.items() if "wall" not in k} == {k: v for k, v in prov_b.items() if "wall" not in k}


@pytest.mark.slow
def test_snakemake_html_report(tiny):
    snakemake(tiny, "--config", "scale=tiny", "--report", "report.html")
    assert (tiny / "report.html").stat().st_size > 10_000


def _planned_runs(root, scale):
    """Per-run metrics files that `snakemake -n` would (re)build, by study."""
    proc = snakemake(root, "--summary", "--config", f"scale={scale}")
    planned = {}
    for line in proc.stdout.splitlines():
        cols = line.split("\t")
        path = cols[0]
        parts = path.split("/")
        # results/<study>/<scale>/runs/<arm>/seed<k>/metrics.json
        if len(parts) >= 7 and parts[0] == "results" and parts[3] == "runs" and parts[-1] == "metrics.json" \
                and parts[2] == scale and "update pending" in line:
            planned.setdefault(parts[1], set()).add(path)
    return planned


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["tiny", "mini"])
def test_fresh_clone_plans_every_run(tmp_path, scale):
    """Issue: committed metrics.json/claims.json must not mask missing runs on a clone.

    A clone has the committed aggregates but no runs. The plan for the default target must
    contain the same run files as the plan once the aggregates are gone too (then the
    aggregation needs every run): every run of every study, whatever figures read."""
    root = copy_workflow(tmp_path)
    from paperzoo.engine.io import read_yaml

    studies = read_yaml(REPO / "config" / "config.yaml")["studies"]   # every study in the DAG
    for study in studies:   # committed aggregates (as at mini; a stand-in at tiny)
        for name in ("metrics.json", "claims.json"):
            src = REPO / "results" / study / "mini" / name
            dst = root / "results" / study / scale / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(src.read_text())
    with_aggregates = _planned_runs(root, scale)
    for study in studies:
        for name in ("metrics.json", "claims.json"):
            (root / "results" / study / scale / name).unlink()
    without = _planned_runs(root, scale)
    assert set(without) == set(studies), sorted(without)
    for study in studies:
        assert with_aggregates.get(study) == without[study], (study, len(with_aggregates.get(study, ())),
                                                              len(without[study]))


# Appended to a copy of the report: after the page has loaded, it lists images that did not
# decode, the tables, and every resource fetched from anywhere but the local disk.
PROBE_JS = """<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                   .map(function (i) { return i.getAttribute('src'); });
  var remote = performance.getEntriesByType('resource').map(function (e) { return e.name; })
                          .filter(function (n) { return n.indexOf('file:') !== 0; });
  var pre = document.createElement('pre');
  pre.id = 'pz-probe';
  pre.textContent = JSON.stringify({images: imgs.length, broken: broken, remote: remote,
                                    tables: document.querySelectorAll('table').length,
                                    title: document.title});
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str | None:
    """A Chromium binary (Debian's ``chromium`` package), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.slow
def test_report_renders_in_a_real_browser_offline(tiny, tmp_path):
    """The tiny report in headless Chromium with every host unresolvable: every figure decodes,
    the claims tables render, nothing is fetched from the network; a screenshot is saved
    (to $PAPERZOO_ARTIFACTS when set)."""
    exe = chromium()
    if exe is None:
        pytest.skip("Chromium is not installed: `apt-get install chromium` (Debian) runs this test; "
                    ".ci/run installs it when it runs as root")
    report = tiny / "results" / "report" / "tiny"
    page = (report / "index.html").read_text()
    probe = report / "browser_probe.html"          # a copy beside the original: same relative paths
    probe.write_text(page.replace("</body>", PROBE_JS + "</body>"))
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--allow-file-access-from-files", "--host-resolver-rules=MAP * ~NOTFOUND",
             "--virtual-time-budget=15000"]
    proc = subprocess.run(flags + ["--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="pz-probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, (proc.stdout[-2000:], proc.stderr[-2000:])
    result = json.loads(htmllib.unescape(found.group(1)))
    n_figures = page.count("<img ")
    assert result["images"] == n_figures > 0
    assert result["broken"] == [], result["broken"]
    assert result["remote"] == [], result["remote"]
    from paperzoo.engine.io import read_yaml

    studies = read_yaml(REPO / "config" / "config.yaml")["studies"]
    assert result["tables"] >= len(studies) + 1          # the overview + a claims table per study
    assert all(study in page for study in studies)
    shot = tmp_path / "report_first_screen.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1280,1000", (report / "index.html").as_uri()],
                   capture_output=True, timeout=180)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("PAPERZOO_ARTIFACTS"):
        out = os.path.join(os.environ["PAPERZOO_ARTIFACTS"], shot.name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copy(shot, out)
