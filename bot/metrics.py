"""What operations watch, at GET /metrics in the Prometheus text format (prometheus-client).

Per process (each replica has its own registry; Prometheus sums over replicas):

- `hms_turns_total{type,outcome}` and `hms_turn_seconds{type}` (a histogram): turns by activity type (the known
  Bot Framework types, anything else `other`) and outcome (`ok`, `error`, `busy`: refused with 503).
- `hms_sends_total{outcome,status}`: proactive sends by outcome (`sent`, `retried`, `dead`, `waiting`: nobody
  to send to yet, `lost`: the claim was taken over) and the connector's HTTP status (`429`, `502`, `0` when it
  gave no answer in time, `200` for sent).
- `hms_outbox_messages{state}`: the outbox's depth by state (`pending`, `retry`, `waiting`: of those to retry,
  waiting for a chat with their recipient, `claimed`: pending or to retry, under a live claim, `dead`), counted
  with one query when scraped, kept for `OUTBOX_TTL` seconds.
- `hms_job_seconds{job}` (a histogram) and `hms_job_lag_seconds{job}`: how long each scheduler tick took
  (planning, delivery, pruning) and how late it started after its scheduled time; `hms_job_last_success_timestamp_
  seconds{job}`.
- `hms_outbox_count_failures_total`: scrapes at which the outbox could not be counted (then it is left out).
- `hms_read_cache_hits_total`, `hms_read_cache_misses_total`, `hms_read_cache_hit_ratio`: the answers' read cache
  (storage.sessions.Readers).
- `hms_db_pool_connections{pool}` and `hms_db_pool_checked_out{pool}`: the database pools (`turns`, `jobs`).

No label carries a person, a name, an e-mail, a conversation or a tenant: every label value is from a closed set.
The turn's cost is one counter increment and one histogram observation; the outbox is counted at scrape time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

# the classic text format every Prometheus reads (the names here are plain ASCII: nothing needs the newer one)
log = logging.getLogger("hms.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTBOX_TTL = 5.0  # seconds a scraped outbox count is reused (several Prometheus servers, a scrape storm)

# Bot Framework's activity types; the type comes from outside, so anything else is one label value
TURN_TYPES = frozenset({"message", "invoke", "conversationUpdate", "installationUpdate", "messageReaction",
                        "messageUpdate", "messageDelete", "event", "typing", "endOfConversation"})
SEND_OUTCOMES = ("sent", "retried", "dead", "waiting", "lost")
OUTBOX_STATES = ("pending", "retry", "waiting", "claimed", "dead")
TURN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)


def turn_type(value: object) -> str:
    return value if isinstance(value, str) and value in TURN_TYPES else "other"


class Metrics:
    """One process's metrics. `outbox` counts the outbox by state (async, at scrape time); `readers` has `hits`
    and `misses`; `pools` name engines (or anything with `.pool`) whose pool has `size()` and `checkedout()`."""

    def __init__(self, *, outbox: Callable[[], Awaitable[dict[str, int]]] | None = None, readers: Any = None,
                 pools: dict[str, Any] | None = None, monotonic: Callable[[], float] = time.monotonic):
        self.registry = CollectorRegistry(auto_describe=True)
        self._turns = Counter("hms_turns", "Turns handled, by activity type and outcome", ["type", "outcome"],
                              registry=self.registry)
        self._turn_seconds = Histogram("hms_turn_seconds", "Time to handle a turn, by activity type", ["type"],
                                       buckets=TURN_BUCKETS, registry=self.registry)
        self._sends = Counter("hms_sends", "Proactive sends, by outcome and the connector's HTTP status",
                              ["outcome", "status"], registry=self.registry)
        self._job_seconds = Histogram("hms_job_seconds", "Time a scheduler tick took, by job", ["job"],
                                      buckets=JOB_BUCKETS, registry=self.registry)
        self._job_lag = Histogram("hms_job_lag_seconds", "How late a scheduler tick started after its scheduled "
                                  "time, by job", ["job"], buckets=JOB_BUCKETS, registry=self.registry)
        self._job_failures = Counter("hms_job_failures", "Scheduler ticks that failed, by job", ["job"],
                                     registry=self.registry)
        self._job_success: dict[str, float] = {}
        self._outbox_failures = Counter("hms_outbox_count_failures", "Scrapes at which the outbox could not be "
                                        "counted (the database unreachable)", registry=self.registry)
        self._outbox = outbox
        self._outbox_counts: dict[str, int] | None = None
        self._outbox_at = float("-inf")
        self._monotonic = monotonic
        self._readers = readers
        self._pools = dict(pools or {})
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.registry.register(_Collected(self))

    # -- recorded as things happen -------------------------------------------------------------------------

    def turn(self, activity_type: object, outcome: str, seconds: float) -> None:
        """One turn: a counter increment and a histogram observation (label children are looked up once)."""
        key = (turn_type(activity_type), outcome)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self._turns.labels(*key), self._turn_seconds.labels(key[0]))
        children[0].inc()
        children[1].observe(seconds)

    def send(self, outcome: str, status: int | None) -> None:
        """One proactive send's outcome (usecases.delivery calls it through its `observe` hook); `status` is the
        connector's HTTP status (0: no answer in time), None when nothing was sent."""
        self._sends.labels(outcome if outcome in SEND_OUTCOMES else "other",
                           "none" if status is None else str(int(status))).inc()

    def job(self, job: str, seconds: float, lag: float | None, ok: bool, now: float | None = None) -> None:
        """One scheduler tick (scheduler.jobs calls it)."""
        self._job_seconds.labels(job).observe(seconds)
        if lag is not None:
            self._job_lag.labels(job).observe(max(0.0, lag))
        if ok:
            self._job_success[job] = time.time() if now is None else now
        else:
            self._job_failures.labels(job).inc()

    # -- read when scraped ---------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Count the outbox unless a count younger than OUTBOX_TTL is at hand (one query per TTL at most). When the
        database cannot be reached the outbox is left out (and `hms_outbox_count_failures_total` counts it): the
        rest is still served, when operations need it most."""
        if self._outbox is None or self._monotonic() - self._outbox_at < OUTBOX_TTL:
            return
        try:
            self._outbox_counts = await self._outbox()
        except Exception as exc:  # noqa: BLE001 - any database failure: no count, and say so once per TTL
            self._outbox_counts = None
            self._outbox_failures.inc()
            log.warning("metrics: the outbox could not be counted (%s)", type(exc).__name__)
        self._outbox_at = self._monotonic()

    async def exposition(self) -> bytes:
        await self.refresh()
        return generate_latest(self.registry)

    def collected(self) -> Iterable[Metric]:
        if self._outbox_counts is not None:
            depth = GaugeMetricFamily("hms_outbox_messages", "Outbox messages by state (counted when scraped)",
                                      labels=["state"])
            for state in OUTBOX_STATES:
                depth.add_metric([state], self._outbox_counts.get(state, 0))
            yield depth
        if self._readers is not None:
            hits, misses = int(self._readers.hits), int(self._readers.misses)
            yield CounterMetricFamily("hms_read_cache_hits", "Reads answered from the read cache", value=hits)
            yield CounterMetricFamily("hms_read_cache_misses", "Reads that went to the database and were kept",
                                      value=misses)
            yield GaugeMetricFamily("hms_read_cache_hit_ratio", "Hits over hits and misses since start",
                                    value=hits / (hits + misses) if hits + misses else 0.0)
        if self._pools:
            size = GaugeMetricFamily("hms_db_pool_connections", "Connections the pool may hold", labels=["pool"])
            out = GaugeMetricFamily("hms_db_pool_checked_out", "Connections in use now", labels=["pool"])
            for name, engine in self._pools.items():
                pool = getattr(engine, "pool", engine)
                if hasattr(pool, "size") and hasattr(pool, "checkedout"):
                    size.add_metric([name], pool.size())
                    out.add_metric([name], pool.checkedout())
            yield size
            yield out
        if self._job_success:
            last = GaugeMetricFamily("hms_job_last_success_timestamp_seconds", "When each job last succeeded "
                                     "(Unix time)", labels=["job"])
            for job, at in sorted(self._job_success.items()):
                last.add_metric([job], at)
            yield last


class _Collected:
    """Metrics read from their sources when scraped (a custom collector)."""

    def __init__(self, metrics: Metrics):
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics.collected()

    def describe(self) -> Iterable[Metric]:
        return []  # made up at each scrape: nothing to check for clashes at registration
