"""Staff and department pages (read views; the data is synced from WeCom)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def staff_list(request: HttpRequest) -> HttpResponse:
    return render(request, "console/placeholder.html", {"title": "staff"})


@login_required
def department_list(request: HttpRequest) -> HttpResponse:
    return render(request, "console/placeholder.html", {"title": "departments"})
