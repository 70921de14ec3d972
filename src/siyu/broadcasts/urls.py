from django.urls import path

from siyu.broadcasts import views

app_name = "broadcasts"

urlpatterns = [
    path("", views.broadcast_list, name="list"),
    path("new/", views.compose, name="compose"),
    path("count/", views.audience_count, name="count"),
    path("rules/", views.rules, name="rules"),
    path("<int:broadcast_id>/", views.detail, name="detail"),
    path("<int:broadcast_id>/edit/", views.compose, name="edit"),
    path("<int:broadcast_id>/preview/", views.preview, name="preview"),
    path("<int:broadcast_id>/preview.csv", views.preview_csv, name="preview_csv"),
    path("<int:broadcast_id>/send/", views.send, name="send"),
    path("<int:broadcast_id>/remind/", views.remind, name="remind"),
    path("<int:broadcast_id>/cancel/", views.cancel, name="cancel"),
]
