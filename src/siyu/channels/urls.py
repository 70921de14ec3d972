from django.urls import path

from siyu.channels import views

app_name = "channels"

urlpatterns = [
    path("", views.channel_list, name="list"),
    path("new/", views.channel_create, name="create"),
    path("groups/new/", views.group_create, name="group_create"),
    path("welcome/", views.default_welcome, name="default_welcome"),
    path("welcome/preview/", views.welcome_preview, name="welcome_preview"),
    path("stats/", views.channel_stats, name="stats"),
    path("<int:channel_id>/", views.channel_detail, name="detail"),
    path("<int:channel_id>/stats.csv", views.channel_stats_csv, name="stats_csv"),
    path("<int:channel_id>/edit/", views.channel_edit, name="edit"),
    path("<int:channel_id>/qr.png", views.channel_qr, name="qr"),
    path("<int:channel_id>/poster.png", views.channel_poster, name="poster"),
    path("<int:channel_id>/pause/", views.channel_pause, name="pause"),
    path("<int:channel_id>/resume/", views.channel_resume, name="resume"),
    path("<int:channel_id>/archive/", views.channel_archive, name="archive"),
    path("<int:channel_id>/duplicate/", views.channel_duplicate, name="duplicate"),
]
