"""Console pages. Thin: parse, check access, call a selector or service, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from siyu.corps.access import corps_for_user
from siyu.corps.middleware import SESSION_CORP_KEY


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("customers:list")


@login_required
@require_POST
def switch_corp(request: HttpRequest) -> HttpResponse:
    """Make another corp the current one; only corps the user may switch to are accepted."""
    corp_id = request.POST.get("corp_id", "")
    user = request.user
    assert user.is_authenticated  # login_required
    allowed = corps_for_user(user.pk, is_superuser=user.is_superuser)
    if corp_id.isdigit() and allowed.filter(pk=int(corp_id)).exists():
        request.session[SESSION_CORP_KEY] = int(corp_id)
    return redirect("customers:list")
