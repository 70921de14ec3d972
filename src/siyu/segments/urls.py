from django.urls import path

from siyu.segments import views

app_name = "segments"

urlpatterns = [
    path("", views.segment_list, name="list"),
    path("new/", views.segment_new, name="new"),
    path("preview/", views.segment_preview, name="preview"),
    path("<int:segment_id>/", views.segment_detail, name="detail"),
    path("<int:segment_id>/edit/", views.segment_edit, name="edit"),
    path("<int:segment_id>/delete/", views.segment_delete, name="delete"),
    path("<int:segment_id>/exclude/", views.segment_exclude, name="exclude"),
]
