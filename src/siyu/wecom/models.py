"""State of the WeCom boundary kept in the database, so every worker process shares it.

Outbound half: cached access tokens, the limiter's shared state (buckets, penalty windows, concurrency,
waiting and running calls by priority) and the outbox of writes to WeCom. The inbound half (callback inbox,
sync) follows.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.clock import now
from siyu.core.tenancy import CorpManager, CorpOwned


class AccessToken(CorpOwned):
    """The cached access token of one corp and app secret, and the lease that lets one process refresh it."""

    # sha256 of the app secret: tokens are per app (per secret), and the secret itself is never stored here.
    secret_digest = models.CharField(max_length=64)
    # WeCom tokens are up to 512 bytes (wecom-api.md §1); encrypted at rest like the corp secrets.
    token_encrypted = models.TextField(blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True)
    # One refresh at a time across processes: a caller claims the lease with an atomic UPDATE.
    refresh_owner = models.CharField(max_length=36, blank=True, default="")
    refresh_until = models.DateTimeField(null=True, blank=True)
    # A configuration error (40001 invalid secret…) is remembered so gettoken is not hammered: repeated wrong
    # secrets get the server's IP blocked for an hour (wecom-api.md §1).
    last_error = models.TextField(blank=True, default="")
    error_until = models.DateTimeField(null=True, blank=True)

    objects = CorpManager["AccessToken"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["corp", "secret_digest"], name="wecom_token_unique_secret")
        ]


class ApiLimit(CorpOwned):
    """Shared limiter state of one WeCom API for one corp: token buckets, penalty window, concurrency cap."""

    api = models.CharField(max_length=100)
    minute_tokens = models.FloatField()
    hour_tokens = models.FloatField()
    refilled_at = models.DateTimeField(default=now)
    # Set when WeCom answers 45009: nothing is sent to this API before then.
    penalty_until = models.DateTimeField(null=True, blank=True)
    # Lowered when WeCom answers 45033; null means the configured default.
    concurrency = models.IntegerField(null=True, blank=True)
    concurrency_changed_at = models.DateTimeField(null=True, blank=True)

    objects = CorpManager["ApiLimit"]()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["corp", "api"], name="wecom_apilimit_unique_api")]


class GatewayTicket(CorpOwned):
    """A call waiting for, or holding, a slot at the gateway: how processes see each other's priorities.

    Tickets expire, so a process that dies leaves nothing blocked for longer than ``expires_at``.
    """

    class State(models.TextChoices):
        WAITING = "waiting", _("Waiting")
        RUNNING = "running", _("Running")

    api = models.CharField(max_length=100)
    priority = models.SmallIntegerField()
    state = models.CharField(max_length=8, choices=State.choices)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=now)

    objects = CorpManager["GatewayTicket"]()

    class Meta:
        indexes = [models.Index(fields=["corp", "state", "api"], name="wecom_ticket_state")]


class Outbox(CorpOwned):
    """One write to WeCom, stored before it is sent: once per idempotency key, result or error recorded."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    api = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    idempotency_key = models.CharField(max_length=200)
    priority = models.SmallIntegerField(default=50)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=now)
    # A claimed row whose worker died is claimable again after this moment.
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    errcode = models.IntegerField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=now)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = CorpManager["Outbox"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["corp", "idempotency_key"], name="wecom_outbox_unique_key")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="wecom_outbox_due"),
            models.Index(fields=["corp", "status", "created_at"], name="wecom_outbox_corp_status"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.api} {self.idempotency_key} ({self.status})"
