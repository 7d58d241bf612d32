"""The Snakemake scheduler workaround keeps one pending re-evaluation (engine/scheduler.py)."""
import threading
from types import SimpleNamespace


def test_one_pending_reevaluation_timer_which_does_not_hold_up_exit():
    from snakemake.scheduling.job_scheduler import JobScheduler

    from paperzoo.engine.scheduler import single_reevaluation_timer

    assert single_reevaluation_timer() and single_reevaluation_timer()      # idempotent
    sched = SimpleNamespace(_open_jobs=threading.Semaphore(0))
    before = threading.active_count()
    for _ in range(50):                      # 50 passes while one re-evaluation is pending
        JobScheduler._schedule_reevalutation(sched, 0.2)
    assert threading.active_count() == before + 1
    assert sched._paperzoo_reevaluation.daemon
    assert sched._open_jobs.acquire(timeout=2)                 # it fires: the scheduler wakes
    assert not sched._open_jobs.acquire(timeout=0.4)           # once, not 50 times
    sched._paperzoo_reevaluation.join(1)
    JobScheduler._schedule_reevalutation(sched, 0.05)          # after it fired, the next pass may start one
    assert sched._open_jobs.acquire(timeout=2)
