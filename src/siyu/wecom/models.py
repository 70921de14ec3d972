"""State of the WeCom boundary kept in the database, so every worker process shares it.

Outbound half: cached access tokens, the limiter's shared state (buckets, penalty windows, concurrency,
waiting and running calls by priority) and the outbox of writes to WeCom. The inbound half (callback inbox,
sync) follows.
"""

from __future__ import annotations

from django.conf import settings
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
    # A write that is worthless after this moment (a welcome message: its code lasts 20 s) is failed as
    # expired instead of being sent, or retried, later.
    expires_at = models.DateTimeField(null=True, blank=True)

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


# --- Inbound half: the callback inbox and syncs -------------------------------------------------------------


class InboxEvent(CorpOwned):
    """A callback as WeCom delivered it, on disk before it was acknowledged; the worker turns it into changes.

    ``dedupe_key`` is the sha1 of the decrypted XML: WeCom redelivers the same message up to three times and
    every customer-contact event has ``FromUserName=sys``, so only the whole message tells redeliveries apart
    (wecom-api.md §2.5). Rows sharing an ``ordering_key`` (one customer, one group, the tags, the org chart)
    are worked strictly in arrival order; different keys in parallel.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        PROCESSING = "processing", _("Processing")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        IGNORED = "ignored", _("Ignored")

    dedupe_key = models.CharField(max_length=40)
    event = models.CharField(max_length=64, blank=True, default="")  # Event (or MsgType when not an event)
    change_type = models.CharField(max_length=64, blank=True, default="")
    ordering_key = models.CharField(max_length=160, blank=True, default="")
    message = models.TextField(blank=True, default="")  # the decrypted XML (events only; see receiver)
    event_time = models.DateTimeField(null=True, blank=True)  # the message's CreateTime
    received_at = models.DateTimeField(default=now)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=now)
    # A claimed row whose worker died is claimable again after ``locked_until``; ``claim`` names the claimer.
    claim = models.CharField(max_length=32, blank=True, default="")
    locked_until = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True, default="")
    last_error = models.TextField(blank=True, default="")

    objects = CorpManager["InboxEvent"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["corp", "dedupe_key"], name="wecom_inbox_unique_dedupe")
        ]
        indexes = [
            # The worker's scan and the per-key ordering check only ever look at open rows: partial indexes
            # stay small however many done rows accumulate.
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=models.Q(status__in=["pending", "processing"]),
                name="wecom_inbox_open",
            ),
            models.Index(
                fields=["corp", "ordering_key", "id"],
                condition=models.Q(status__in=["pending", "processing"]),
                name="wecom_inbox_open_key",
            ),
            models.Index(fields=["corp", "status", "-id"], name="wecom_inbox_corp_status"),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.event}/{self.change_type} {self.dedupe_key[:8]} ({self.status})"


class SyncRun(CorpOwned):
    """One full sync or reconciliation of a corp with WeCom: stage, resumable checkpoint, counts, outcome."""

    class Kind(models.TextChoices):
        FULL = "full", _("Full sync")
        RECONCILE = "reconcile", _("Reconciliation")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    stage = models.CharField(max_length=20, blank=True, default="")
    # Where to resume: the stage's position (userid chunk, cursor, phase…); committed with the work it covers.
    checkpoint = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)  # what WeCom had: departments, staff, customers…
    repairs = models.JSONField(default=dict, blank=True)  # what had to change here: added, deleted, tags…
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=now)
    # A scheduled reconciliation waits until then.
    scheduled_for = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The worker running it holds it until ``lease_until`` and extends that as it goes; a run whose worker
    # died is taken over from its checkpoint once the lease has passed.
    lease_owner = models.CharField(max_length=32, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)

    objects = CorpManager["SyncRun"]()

    class Meta:
        indexes = [models.Index(fields=["corp", "status", "-created_at"], name="wecom_syncrun_corp_status")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} sync {self.pk} ({self.status})"
