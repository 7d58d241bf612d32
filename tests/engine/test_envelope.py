"""The compute envelope of the default run, held at review: the committed ledger of the whole
`mini` (results/report/mini/cost_jobs.csv, written by engine.ledger from a run's benchmark files)
must stay within 200 job-minutes (about 100 min wall on 2 cores). A change that adds arms, seeds
or steps past it fails here once its rerun's ledger is committed."""
from pathlib import Path

from paperzoo import STUDIES
from paperzoo.engine.ledger import read_ledger

LEDGER = Path(__file__).resolve().parents[2] / "results/report/mini/cost_jobs.csv"
ENVELOPE_JOB_MIN = 200.0


def test_committed_mini_ledger_is_within_the_envelope():
    recs = read_ledger(LEDGER)
    assert recs, f"{LEDGER}: no jobs (the committed ledger of the mini run is missing)"
    missing = set(STUDIES) - {r["study"] for r in recs}   # besides the studies: data and report jobs
    assert not missing, f"{LEDGER}: no jobs of {sorted(missing)} (the ledger must cover the whole mini)"
    total = sum(r["s"] for r in recs if r["s"] == r["s"]) / 60
    assert total <= ENVELOPE_JOB_MIN, (f"{LEDGER}: the whole mini costs {total:.1f} job-minutes, over the "
                                       f"{ENVELOPE_JOB_MIN:.0f} job-minute envelope (about 100 min on 2 cores)")
