from django.urls import path

from siyu.corps import views

app_name = "corps"

urlpatterns = [
    path("staff/", views.staff_list, name="staff_list"),
    path("departments/", views.department_list, name="department_list"),
]
