"""The channels' periodic work, run by the workers' beat (``siyu.core.scheduler``).

- ``channels.refresh``: every live channel's contact way checked against what it should say now (schedules
  open and close, a new day resets the caps) and pushed when different (``contact_way.refresh_all``);
- ``channels.catch_up``: adds whose automation did not finish, welcomes whose outcome never reached their add,
  and recent relations no add was recorded for;
- ``channels.stats``: the analytics rollup's dirty days rebuilt (``rollups.settle``);
- ``channels.media``: attachments' files uploaded again before WeCom's three days run out, so a welcome
  message never waits for an upload.
"""

from __future__ import annotations

import datetime as dt
import logging

from siyu.core.clock import now
from siyu.core.scheduler import register

log = logging.getLogger(__name__)

CATCH_UP_EVERY = dt.timedelta(minutes=1)
MEDIA_EVERY = dt.timedelta(hours=1)
# Longest the analytics rollup is put off while customers' adds are being worked.
BUSY_DEFER = dt.timedelta(minutes=3)


def refresh() -> None:
    from siyu.channels.contact_way import refresh_all

    refresh_all()


def catch_up() -> None:
    from siyu.channels.handlers import attribute_missed, complete_pending, settle_lost_outcomes

    complete_pending()
    settle_lost_outcomes()
    attribute_missed()


def renew_media() -> int:
    """Upload again the files of welcome variants whose media_id would be too old for a message sent in the
    next ``MEDIA_EVERY``; returns how many were renewed."""
    from siyu.channels.models import MediaAsset, WelcomeVariant
    from siyu.channels.welcome import renew_media as upload
    from siyu.wecom.media import MEDIA_REUSE
    from siyu.wecom.services import sends_to_wecom

    used: set[int] = set()
    for attachments in WelcomeVariant.objects.values_list("attachments", flat=True):
        used.update(
            int(a["asset_id"]) for a in attachments or [] if isinstance(a, dict) and a.get("asset_id")
        )
    stale_before = now() - MEDIA_REUSE + MEDIA_EVERY
    renewed = 0
    for asset in MediaAsset.objects.filter(pk__in=used).select_related("corp"):
        fresh = asset.media_id and asset.media_uploaded_at and asset.media_uploaded_at > stale_before
        if fresh or not sends_to_wecom(corp=asset.corp, source="system"):
            continue
        try:
            upload(asset)
            renewed += 1
        except Exception:  # tried again next hour; a message meanwhile uploads it itself
            log.exception("channels: renewing media asset %s failed", asset.pk)
    return renewed


def renew_media_job() -> None:
    renew_media()


def register_all() -> None:
    from siyu.channels.contact_way import REFRESH_EVERY
    from siyu.channels.models import ChannelDayDirty
    from siyu.channels.rollups import SETTLE_EVERY, settle_job
    from siyu.core.vacuum import register_hot_table

    register_hot_table(ChannelDayDirty._meta.db_table)
    register("channels.refresh", REFRESH_EVERY, refresh)
    register("channels.catch_up", CATCH_UP_EVERY, catch_up)
    register("channels.media", MEDIA_EVERY, renew_media_job)
    # The analytics rollup waits while adds are being worked (a burst dirties today's row again and again):
    # charts lag by at most a few minutes, welcome messages do not.
    register("channels.stats", SETTLE_EVERY, settle_job, defer_when_busy=BUSY_DEFER)
