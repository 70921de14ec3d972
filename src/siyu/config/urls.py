"""URL map: the console at /, the REST API under /api/v1/, a health check at /healthz."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from siyu.api.root import api


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers and supervisors: an empty 200 from a process that serves requests.

    It touches no database on purpose: a database outage must not make every web process look dead (callbacks
    answer 503 then, and WeCom retries).
    """
    return HttpResponse(b"", status=200)


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", api.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("customers/", include("siyu.customers.urls")),
    path("segments/", include("siyu.segments.urls")),
    path("tags/rules/", include("siyu.tags.rule_urls")),
    path("tags/", include("siyu.tags.urls")),
    path("channels/", include("siyu.channels.urls")),
    path("org/", include("siyu.corps.urls")),
    path("wecom/", include("siyu.wecom.urls")),
    path("groups/", include("siyu.groups.urls")),
    path("g/", include("siyu.groups.public_urls")),
    path("offline/", include("siyu.offline.urls")),
    path("broadcasts/", include("siyu.broadcasts.urls")),
    path("", include("siyu.console.urls")),
]
