"""The child's figures on the service's metrics: counters grow by what the child counted since
its last report (also after a restart, when the child counts from 0 again); gauges are set. A
stop's bound runs from when the service wrote it, not from when a slow child read it."""

from __future__ import annotations

from marketplace_chat.metrics import Metrics
from marketplace_chat.webhooks.worker import STOP_ON_EOF_S, MetricsMirror, snapshot, stop_bound


def delivered(metrics: Metrics) -> float:
    return float(snapshot(metrics)["deliveries"].get("delivered", 0.0))


def test_reports_add_to_the_services_counters_and_set_its_gauges() -> None:
    child, service = Metrics(), Metrics()
    mirror = MetricsMirror(service)
    child.webhook_deliveries.labels("delivered").inc(5)
    child.webhooks_pending.set(7)
    mirror.apply(snapshot(child))
    mirror.apply(snapshot(child))  # the same totals again add nothing
    assert delivered(service) == 5
    assert snapshot(service)["pending"] == 7
    child.webhook_deliveries.labels("delivered").inc(2)
    child.backend_errors.labels("postgres").inc()
    mirror.apply(snapshot(child))
    assert delivered(service) == 7
    assert snapshot(service)["postgresErrors"] == 1


def test_a_restarted_child_counts_on_from_the_services_total() -> None:
    service = Metrics()
    mirror = MetricsMirror(service)
    first = Metrics()
    first.webhook_deliveries.labels("delivered").inc(10)
    mirror.apply(snapshot(first))
    mirror.restart()
    second = Metrics()
    second.webhook_deliveries.labels("delivered").inc(3)
    mirror.apply(snapshot(second))
    assert delivered(service) == 13


def test_a_stop_bound_is_cut_to_what_is_left_of_its_deadline() -> None:
    assert stop_bound([b"3.5", b"103.5"], now=100.0) == 3.5
    assert stop_bound([b"3.5", b"103.5"], now=102.5) == 1.0
    assert stop_bound([b"3.5", b"103.5"], now=110.0) == 0.0
    assert stop_bound([b"2.0"], now=0.0) == 2.0
    assert stop_bound([], now=0.0) == STOP_ON_EOF_S
    assert stop_bound([b"soon"], now=0.0) == STOP_ON_EOF_S
