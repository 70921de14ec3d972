from django.apps import AppConfig


class CorpsConfig(AppConfig):
    name = "siyu.corps"
    label = "corps"
    verbose_name = "Corps, staff and roles"
