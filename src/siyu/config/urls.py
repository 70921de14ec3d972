"""URL map: the console at /, the REST API under /api/v1/."""

from django.urls import include, path

from siyu.api.root import api

urlpatterns = [
    path("api/v1/", api.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("customers/", include("siyu.customers.urls")),
    path("tags/", include("siyu.tags.urls")),
    path("org/", include("siyu.corps.urls")),
    path("wecom/", include("siyu.wecom.urls")),
    path("", include("siyu.console.urls")),
]
