from django.apps import AppConfig


class BroadcastsConfig(AppConfig):
    name = "siyu.broadcasts"
    label = "broadcasts"
    verbose_name = "Mass messages"

    def ready(self) -> None:
        from siyu.broadcasts.periodic import register_all

        register_all()
