"""Console pages. Thin: parse, check access, call a selector or service, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from siyu.corps.access import corps_for_user
from siyu.corps.middleware import SESSION_CORP_KEY


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("customers:list")


@login_required
@require_POST
def switch_corp(request: HttpRequest) -> HttpResponse:
    corp_id = request.POST.get("corp_id", "")
    if corp_id.isdigit() and corps_for_user(request.user.pk, is_superuser=request.user.is_superuser).filter(
        pk=int(corp_id)
    ).exists():
        request.session[SESSION_CORP_KEY] = int(corp_id)
    return redirect("customers:list")
