from django.urls import path

from siyu.offline import views

app_name = "offline"

urlpatterns = [
    path("", views.member_list, name="member_list"),
    path("export.csv", views.member_export, name="member_export"),
    path("<int:member_id>/", views.member_detail, name="member_detail"),
    path("imports/new/", views.import_new, name="import_new"),
    path("imports/<int:import_id>/", views.import_detail, name="import_detail"),
    path("imports/<int:import_id>/progress/", views.import_progress, name="import_progress"),
    path("imports/<int:import_id>/resume/", views.import_resume, name="import_resume"),
    path("imports/<int:import_id>/rejected.csv", views.import_rejections, name="import_rejections"),
]
