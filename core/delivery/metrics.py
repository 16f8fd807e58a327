"""``/metrics`` on the operator host: delivery KPIs in Prometheus' text format.

Computed at each scrape, by the database, from the same queries as the console's KPIs
(:mod:`core.delivery.kpis`) over the last five minutes, into a registry built for that request:
no process-wide state, so every web process answers the same. Labels are country, channel and
provider (never clinics: thousands of label values would swamp Prometheus; the console has
the per-clinic figures). Protected by a bearer token, ``RELAIS_METRICS_TOKEN``; without one
configured the page does not exist.
"""

import hmac
from collections.abc import Iterator
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from core.db import db, utcnow
from core.delivery import jobs, kpis
from core.delivery.models import Message, MessageStatus
from tenants import scoping
from tenants.models import Tenant

WINDOW = timedelta(minutes=5)
LABELS = ("country", "channel", "provider")
BACKLOG = (MessageStatus.SCHEDULED, MessageStatus.PENDING, MessageStatus.SENDING)

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    expected = current_app.config.get("METRICS_TOKEN")
    if not expected:
        abort(404)
    scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), str(expected).encode()
    ):
        return Response(
            "a valid bearer token is required\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="metrics"'},
            mimetype="text/plain",
        )
    scoping.enter(scoping.SYSTEM)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeliveryCollector(utcnow()))
    body = generate_latest(registry)
    db.session.rollback()  # read only: end the transaction
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


class DeliveryCollector(Collector):
    """The delivery figures of the five minutes before ``now``, the backlog, the queues."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: the names are fixed here

    def collect(self) -> Iterator[Metric]:
        yield from self._kpis()
        yield self._backlog()
        yield from self._queues()

    def _kpis(self) -> Iterator[Metric]:
        rows = kpis.delivery_kpis(self.now - WINDOW, self.now, LABELS)
        window = GaugeMetricFamily(
            "relais_kpi_window_seconds", "Length of the window the relais_delivery_* gauges cover"
        )
        window.add_metric([], WINDOW.total_seconds())
        yield window

        def gauge(name, documentation, value_of, extra=()):
            family = GaugeMetricFamily(name, documentation, labels=[*LABELS, *extra])
            for row in rows:
                for suffix, value in value_of(row):
                    if value is not None:
                        family.add_metric([*_labels(row.key), *suffix], float(value))
            return family

        for name, doc in (
            ("created", "Messages created in the window"),
            ("sent", "Messages of the window a provider accepted"),
            ("delivered", "Messages of the window delivered, as receipts say"),
            ("undelivered", "Messages of the window the provider could not deliver"),
            ("failed", "Messages of the window no provider took"),
        ):
            attribute = "messages" if name == "created" else name
            yield gauge(
                f"relais_delivery_{name}_messages",
                doc,
                lambda r, a=attribute: [((), getattr(r, a))],
            )
        yield gauge(
            "relais_delivery_rate_ratio",
            "Delivered / sent over the window",
            lambda r: [((), r.delivery_rate)],
        )
        yield gauge(
            "relais_delivery_time_to_reception_seconds",
            "Time from due to delivery receipt, quantiles over the window",
            lambda r: [((str(q),), v) for q, v in r.quantiles_s.items()],
            extra=("quantile",),
        )
        yield gauge(
            "relais_delivery_time_to_reception_mean_seconds",
            "Mean time from due to delivery receipt over the window",
            lambda r: [((), r.mean_s)],
        )
        yield gauge(
            "relais_delivery_within_5s_ratio",
            "Share of delivered messages received within 5 s",
            lambda r: [((), r.within_share)],
        )
        yield gauge(
            "relais_provider_attempts",
            "Provider calls made in the window",
            lambda r: [((), r.attempts)],
        )
        yield gauge(
            "relais_provider_temporary_failures",
            "Provider calls of the window that failed temporarily (timeout, 5xx, throttling)",
            lambda r: [((), r.temporary_failures)],
        )
        yield gauge(
            "relais_provider_availability_ratio",
            "Share of the window's provider calls that were not temporary failures",
            lambda r: [((), r.availability)],
        )

    def _backlog(self) -> Metric:
        """Messages not yet handed to a provider, whenever created (the status index)."""
        family = GaugeMetricFamily(
            "relais_messages_waiting",
            "Messages scheduled, due or being sent, by status",
            labels=["country", "status"],
        )
        counts = {
            (country, str(status)): count
            for country, status, count in db.session.execute(
                sa.select(Tenant.country_code, Message.status, sa.func.count())
                .select_from(Message)
                .join(Tenant, Tenant.id == Message.tenant_id)
                .where(Message.status.in_(BACKLOG))
                .group_by(Tenant.country_code, Message.status)
            )
        }
        for (country, status), count in sorted(counts.items()):
            family.add_metric([country, status], count)
        return family

    def _queues(self) -> Iterator[Metric]:
        if not current_app.config.get("REDIS_URL"):
            return
        up = GaugeMetricFamily("relais_redis_up", "1 if Redis answered this scrape")
        lengths = GaugeMetricFamily(
            "relais_queue_jobs", "Jobs waiting in each RQ queue", labels=["queue"]
        )
        try:
            for name in jobs.QUEUES:
                lengths.add_metric([name], jobs.queue(name).count)
        except RedisError:
            current_app.logger.warning("metrics: Redis does not answer", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield lengths


def _labels(key: tuple) -> list[str]:
    return [value or "" for value in key]
