"""The Celery application both sides use: the coordinator sends tasks, workers run them.

Delivery guarantees come from Celery and the broker, idempotency from the ledger:

- acks_late: a task's message is acknowledged only once the task has returned, so a worker
  killed mid-scan (SIGKILL, power loss) leaves its message unacknowledged; Redis hands it to
  another worker after the visibility timeout (`--redelivery-after`, seconds), which must be
  longer than a task lasts (a task still running when it passes is handed out again: the
  ledger's lease makes the second worker wait instead of scanning the same address twice);
- prefetch multiplier 1: a worker holds no more messages than it has threads, so a killed
  worker strands few, and the others are free to take the rest;
- JSON only: a message is data, never pickled code.
"""

from __future__ import annotations

from celery import Celery

from scanner.fleet.spec import DEFAULT_QUEUE
from scanner.store.location import redact

TASK_NAME = "exposure.scan_part"
DEFAULT_REDELIVERY_S = 600.0
RESULT_EXPIRES_S = 24 * 3600
BROKER_CONNECT_TIMEOUT_S = 10.0


def make_app(
    broker: str, result_backend: str | None = None, *,
    redelivery_after_s: float = DEFAULT_REDELIVERY_S,
) -> Celery:
    app = Celery("exposure", broker=broker, backend=result_backend or _backend_for(broker))
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_default_queue=DEFAULT_QUEUE,
        result_expires=RESULT_EXPIRES_S,
        broker_connection_timeout=BROKER_CONNECT_TIMEOUT_S,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": redelivery_after_s,
            # look for unacknowledged messages to hand out again a few times per timeout
            "unacked_restore_interval": max(1, min(10, int(redelivery_after_s / 4))),
            "unacked_restore_throttle": 1,
        },
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_enable_remote_control=True,
    )
    return app


def _backend_for(broker: str) -> str:
    """Redis is broker and result backend; RabbitMQ (amqp://) answers over its own queues."""
    return broker if broker.startswith(("redis://", "rediss://", "redis+socket://")) else "rpc://"


def describe_broker(broker: str) -> str:
    return redact(broker)
