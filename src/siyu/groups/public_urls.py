from django.urls import path

from siyu.groups import public

urlpatterns = [
    path("<str:token>/", public.landing, name="group_code_landing"),
    path("<str:token>/qr/<int:entry_id>-<str:digest>.png", public.landing_image, name="group_code_image"),
]
