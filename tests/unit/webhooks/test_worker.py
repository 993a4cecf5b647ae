"""The child's figures on the service's metrics: counters grow by what the child counted since
its last report (also after a restart, when the child counts from 0 again); gauges are set."""

from __future__ import annotations

from marketplace_chat.metrics import Metrics
from marketplace_chat.webhooks.worker import MetricsMirror, snapshot


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
