from django.contrib.auth import views as auth_views
from django.urls import path

from siyu.console import views

app_name = "console"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="console/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("switch-corp/", views.switch_corp, name="switch_corp"),
    path("", views.home, name="home"),
    path("customers/", views.customer_list, name="customer_list"),
    path("customers/<int:customer_id>/", views.customer_detail, name="customer_detail"),
    path("tags/", views.tag_list, name="tag_list"),
    path("staff/", views.staff_list, name="staff_list"),
    path("departments/", views.department_list, name="department_list"),
]
