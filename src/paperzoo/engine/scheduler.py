"""Workaround for a Snakemake scheduler hot loop (applied by ``workflow/rules/common.smk``).

Snakemake 9's job scheduler, with its default job-rate limit (``--max-jobs-per-timespan
100/1s``), ends every scheduling pass by starting a ``threading.Timer`` that releases the
scheduler again one timespan later (``JobScheduler._schedule_reevalutation``). Every pass does
that, including the passes that a finished job triggers, so each finished job starts one more
self-renewing chain: after ``k`` finished jobs the main process runs about ``k`` passes per
second while jobs wait for cores, each pass resetting and re-selecting every ready job. In a
full ``mini`` run on 2 cores Snakemake's own process had used 22 CPU-minutes by job 156, and
the jobs' median share of a core fell from 0.95 (first third) to 0.79 (last third): the jobs
ran up to a quarter slower than on an idle machine.

:func:`single_reevaluation_timer` keeps at most one pending re-evaluation: a pass that finds
one pending starts none, so the scheduler still wakes once per timespan while jobs wait (what
the rate limit needs) without the chains multiplying. The timer is a daemon thread, so it does
not hold up Snakemake's exit. A Snakemake without the method is left alone.
"""
from __future__ import annotations

import threading


def single_reevaluation_timer() -> bool:
    """Patch ``JobScheduler._schedule_reevalutation`` (sic, Snakemake's spelling); True if patched."""
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return False
    if not hasattr(JobScheduler, "_schedule_reevalutation"):
        return False
    if getattr(JobScheduler._schedule_reevalutation, "_paperzoo", False):
        return True

    def _schedule_reevalutation(self, delay) -> None:
        pending = getattr(self, "_paperzoo_reevaluation", None)
        if pending is not None and pending.is_alive():
            return
        timer = threading.Timer(delay, self._open_jobs.release)
        timer.daemon = True
        self._paperzoo_reevaluation = timer
        timer.start()

    _schedule_reevalutation._paperzoo = True
    JobScheduler._schedule_reevalutation = _schedule_reevalutation
    return True
