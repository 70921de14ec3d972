"""The public landing page of a group code: no login, one stable link per code (``/g/<token>/``).

It shows the QR image of the group the code serves now (``live_codes.serve_scan``), or says that no group
can be joined at the moment. Each view counts as a scan. The image is served from its own URL named by the
image's digest, so browsers and CDNs may keep it for a day.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from siyu.groups.live_codes import code_by_token, serve_scan
from siyu.groups.models import GroupCodeEntry

# A served image's URL carries its digest, so its bytes never change: a day of caching is safe.
IMAGE_MAX_AGE = 86400


@never_cache  # every view is a scan and may be served another group
@require_GET
def landing(request: HttpRequest, token: str) -> HttpResponse:
    """The group to join now, or a clear "not available" message."""
    code = code_by_token(token)
    if code is None:
        raise Http404("no such group code")
    served = serve_scan(code)
    # 200 either way: WeChat's in-app browser shows its own error page for a 5xx, hiding the message.
    return render(request, "groups/landing.html", {"code": code, "entry": served})


@require_GET
def landing_image(request: HttpRequest, token: str, entry_id: int, digest: str) -> HttpResponse:
    """The QR image of one group of the code's pool."""
    code = code_by_token(token)
    if code is None:
        raise Http404("no such group code")
    entry = (
        GroupCodeEntry.objects.for_corp(code.corp_id)
        .filter(code=code, pk=entry_id, image_sha256__startswith=digest)
        .only("image")
        .first()
    )
    if entry is None or len(digest) < 8:
        raise Http404("no such image")
    response = HttpResponse(bytes(entry.image), content_type="image/png")
    response["Cache-Control"] = f"public, max-age={IMAGE_MAX_AGE}, immutable"
    return response
