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
    return redirect("console:customer_list")


@login_required
@require_POST
def switch_corp(request: HttpRequest) -> HttpResponse:
    corp_id = request.POST.get("corp_id", "")
    if corp_id.isdigit() and corps_for_user(request.user.pk, is_superuser=request.user.is_superuser).filter(
        pk=int(corp_id)
    ).exists():
        request.session[SESSION_CORP_KEY] = int(corp_id)
    return redirect("console:customer_list")


@login_required
def customer_list(request: HttpRequest) -> HttpResponse:
    return render(request, "console/placeholder.html", {"title": "customers"})


@login_required
def customer_detail(request: HttpRequest, customer_id: int) -> HttpResponse:
    return render(request, "console/placeholder.html", {"title": "customer"})


@login_required
def tag_list(request: HttpRequest) -> HttpResponse:
    return render(request, "console/placeholder.html", {"title": "tags"})


@login_required
def staff_list(request: HttpRequest) -> HttpResponse:
    return render(request, "console/placeholder.html", {"title": "staff"})


@login_required
def department_list(request: HttpRequest) -> HttpResponse:
    return render(request, "console/placeholder.html", {"title": "departments"})
