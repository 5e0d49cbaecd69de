"""The scheduler only ticks: APScheduler fires three fixed jobs, planning, delivery and pruning; each asks the database
what to do and does idempotent work, so a restart, a missed tick or a second replica changes nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger("hms.scheduler")

PLAN_JOB = "hms-plan"
DELIVER_JOB = "hms-deliver"
PRUNE_JOB = "hms-prune"


def build_scheduler(plan: Callable[[], Awaitable[object]], deliver: Callable[[], Awaitable[object]],
                    prune: Callable[[], Awaitable[object]] | None = None, *, plan_every: float = 300.0,
                    deliver_every: float = 5.0, prune_every: float = 86400.0) -> AsyncIOScheduler:
    """A scheduler with the jobs (pruning when given): explicit ids, replace_existing, coalesce, a misfire grace
    time, one instance at a time. After downtime each job runs once, not once per missed tick."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    start = dt.datetime.now(dt.UTC)  # the first run right away, then every interval
    jobs = [(PLAN_JOB, plan, plan_every), (DELIVER_JOB, deliver, deliver_every)]
    if prune is not None:
        jobs.append((PRUNE_JOB, prune, prune_every))
    for job_id, func, every in jobs:
        scheduler.add_job(_guarded(job_id, func), IntervalTrigger(seconds=every), id=job_id, name=job_id,
                          replace_existing=True, coalesce=True, max_instances=1, next_run_time=start,
                          misfire_grace_time=max(30, int(every * 2)))
    return scheduler


def _guarded(job_id: str, func: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        started = time.perf_counter()
        try:
            result = await func()
        except asyncio.CancelledError:
            # the bot is stopping (the scheduler cancels what runs): the work is idempotent and is picked up at the
            # next start, so one line, not APScheduler's traceback of a cancelled job
            log.info("job %s stopped with the bot; it runs again at the next start", job_id)
            return
        except Exception:
            log.exception("job %s failed; it runs again at the next tick", job_id)
            return
        elapsed = time.perf_counter() - started
        if elapsed > 1.0:
            log.warning("job %s took %.1f s: %s", job_id, elapsed, result)

    return run
