"""Alerts: what a monitoring run found, recorded as events and POSTed to a webhook.

An alert is a value (kind, message, details). :func:`dispatch` records each
as a ``monitor.alert`` event in the store and, when the spec names a webhook,
POSTs one JSON document with all of them. A webhook that is down never fails
the monitoring run: the failure is recorded as a ``monitor.webhook_failed``
event and reported back, after one retry.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mlcycle.store import MetadataStore

__all__ = ["Alert", "AlertKind", "Delivery", "dispatch", "post_json"]

AlertKind = Literal[
    "dataset_drift",
    "feature_drift",
    "prediction_drift",
    "target_drift",
    "performance",
    "estimated_performance",
    "fairness",
    "ood",
    "data_quality",
    "attribution_drift",
]


@dataclass(frozen=True)
class Alert:
    """One finding that needs a person (or the loop) to act."""

    kind: AlertKind
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "details": self.details}


@dataclass(frozen=True)
class Delivery:
    """What became of the webhook POST: ``ok`` is None when no webhook is configured."""

    url: str | None
    ok: bool | None
    status: int | None = None
    error: str | None = None


def post_json(url: str, payload: dict[str, Any], *, timeout: float, retries: int = 1) -> Delivery:
    """POST ``payload`` as JSON; a 2xx answer is success. Never raises for network trouble."""
    body = json.dumps(payload, default=str).encode()
    error = ""
    for attempt in range(retries + 1):
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "mlcycle-monitor"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status = int(response.status)
            if 200 <= status < 300:
                return Delivery(url, True, status)
            error = f"HTTP {status}"
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
            if exc.code < 500:
                return Delivery(url, False, status, error)  # a client error will not heal
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        if attempt < retries:
            time.sleep(0.5 * (attempt + 1))
    return Delivery(url, False, None, error)


def dispatch(
    store: MetadataStore,
    *,
    model: str,
    version: int,
    alerts: list[Alert],
    report_sha256: str,
    actor: str,
    webhook: str | None,
    timeout: float,
    extra: dict[str, Any] | None = None,
) -> Delivery:
    """Record every alert as an event and send them to the webhook (if any).

    Nothing is sent when there is no alert: a webhook hears about trouble only.
    """
    for alert in alerts:
        store.record_event(
            "monitor.alert",
            "model",
            model,
            actor=actor,
            reason=alert.message,
            details={
                "version": version,
                "report": report_sha256,
                "kind": alert.kind,
                **alert.details,
            },
        )
    if webhook is None or not alerts:
        return Delivery(webhook, None)
    payload = {
        "source": "mlcycle",
        "model": model,
        "version": version,
        "healthy": False,
        "alerts": [a.to_dict() for a in alerts],
        "report_sha256": report_sha256,
        **(extra or {}),
    }
    delivery = post_json(webhook, payload, timeout=timeout)
    if not delivery.ok:
        store.record_event(
            "monitor.webhook_failed",
            "model",
            model,
            actor=actor,
            reason=f"webhook {webhook}: {delivery.error}",
            details={"version": version, "report": report_sha256},
        )
    return delivery
