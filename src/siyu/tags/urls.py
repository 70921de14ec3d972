from django.urls import path

from siyu.tags import views

app_name = "tags"

urlpatterns = [
    path("", views.tag_list, name="list"),
    path("groups/new/", views.group_create, name="group_create"),
    path("groups/<int:group_id>/rename/", views.group_rename, name="group_rename"),
    path("groups/<int:group_id>/move/", views.group_move, name="group_move"),
    path("groups/<int:group_id>/delete/", views.group_delete, name="group_delete"),
    path("groups/<int:group_id>/tags/new/", views.tag_create, name="tag_create"),
    path("<int:tag_id>/rename/", views.tag_rename, name="tag_rename"),
    path("<int:tag_id>/move/", views.tag_move, name="tag_move"),
    path("<int:tag_id>/delete/", views.tag_delete, name="tag_delete"),
]
