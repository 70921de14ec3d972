from django.apps import AppConfig


class OfflineConfig(AppConfig):
    name = "siyu.offline"
    label = "offline"
    verbose_name = "Offline members"

    def ready(self) -> None:
        from siyu.offline import handlers  # noqa: F401 - connects the signal receivers
