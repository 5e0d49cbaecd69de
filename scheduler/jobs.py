"""The scheduler only ticks: APScheduler fires three fixed jobs, planning, delivery and pruning; each asks the database
what to do and does idempotent work, so a restart, a missed tick or a second replica changes nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger("hms.scheduler")

PLAN_JOB = "hms-plan"
DELIVER_JOB = "hms-deliver"
PRUNE_JOB = "hms-prune"

# told after each run: the job's id, seconds it took, seconds it started late (None: unknown), success
Observer = Callable[[str, float, float | None, bool], None]


def build_scheduler(plan: Callable[[], Awaitable[object]], deliver: Callable[[], Awaitable[object]],
                    prune: Callable[[], Awaitable[object]] | None = None, *, plan_every: float = 300.0,
                    deliver_every: float = 5.0, prune_every: float = 86400.0,
                    observe: Observer | None = None) -> AsyncIOScheduler:
    """A scheduler with the jobs (pruning when given): explicit ids, replace_existing, coalesce, a misfire grace
    time, one instance at a time. After downtime each job runs once, not once per missed tick. `observe` is told
    each run: the job's id, how long it took, how late it started after its scheduled time, and whether it
    succeeded."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    start = dt.datetime.now(dt.UTC)  # the first run right away, then every interval
    lags: dict[str, float] = {}
    jobs = [(PLAN_JOB, plan, plan_every), (DELIVER_JOB, deliver, deliver_every)]
    if prune is not None:
        jobs.append((PRUNE_JOB, prune, prune_every))
    for job_id, func, every in jobs:
        scheduler.add_job(_guarded(job_id, func, observe, lags), IntervalTrigger(seconds=every), id=job_id,
                          name=job_id, replace_existing=True, coalesce=True, max_instances=1, next_run_time=start,
                          misfire_grace_time=max(30, int(every * 2)))
    if observe is not None:
        scheduler.add_listener(lambda event: submitted(lags, event), EVENT_JOB_SUBMITTED)
    return scheduler


def submitted(lags: dict[str, float], event: JobSubmissionEvent) -> None:
    """Note how late a job was handed to run, after the latest of the run times it stands for (coalesced)."""
    if event.scheduled_run_times:
        lags[event.job_id] = (dt.datetime.now(dt.UTC) - max(event.scheduled_run_times)).total_seconds()


def _guarded(job_id: str, func: Callable[[], Awaitable[object]], observe: Observer | None = None,
             lags: dict[str, float] | None = None) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        started = time.perf_counter()
        lag = lags.pop(job_id, None) if lags is not None else None
        try:
            result = await func()
        except asyncio.CancelledError:
            # the bot is stopping (the scheduler cancels what runs): the work is idempotent and is picked up at the
            # next start, so one line, not APScheduler's traceback of a cancelled job
            log.info("job %s stopped with the bot; it runs again at the next start", job_id)
            return
        except Exception:
            log.exception("job %s failed; it runs again at the next tick", job_id)
            if observe is not None:
                observe(job_id, time.perf_counter() - started, lag, False)
            return
        elapsed = time.perf_counter() - started
        if observe is not None:
            observe(job_id, elapsed, lag, True)
        if elapsed > 1.0:
            log.warning("job %s took %.1f s: %s", job_id, elapsed, result)

    return run
