from django.urls import path

from siyu.groups import views

app_name = "groups"

urlpatterns = [
    path("codes/", views.code_list, name="code_list"),
    path("codes/new/", views.code_create, name="code_create"),
    path("codes/<int:code_id>/", views.code_detail, name="code_detail"),
    path("codes/<int:code_id>/edit/", views.code_edit, name="code_edit"),
    path("codes/<int:code_id>/delete/", views.code_delete, name="code_delete"),
    path("codes/<int:code_id>/qr-<str:size>.png", views.code_qr, name="code_qr"),
    path("codes/<int:code_id>/entries/new/", views.entry_add, name="entry_add"),
    path("codes/<int:code_id>/entries/<int:entry_id>/edit/", views.entry_edit, name="entry_edit"),
    path("codes/<int:code_id>/entries/<int:entry_id>/move/", views.entry_move, name="entry_move"),
    path("codes/<int:code_id>/entries/<int:entry_id>/remove/", views.entry_remove, name="entry_remove"),
    path("codes/<int:code_id>/entries/<int:entry_id>/image.png", views.entry_image, name="entry_image"),
    path("welcome/", views.welcome_list, name="welcome_list"),
    path("welcome/new/", views.welcome_create, name="welcome_create"),
    path("welcome/<int:template_id>/", views.welcome_edit, name="welcome_edit"),
    path("welcome/<int:template_id>/delete/", views.welcome_delete, name="welcome_delete"),
]
