from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "siyu.channels"
    label = "channels"
    verbose_name = "Channels"

    def ready(self) -> None:
        from siyu.channels import handlers, periodic

        handlers.connect()
        periodic.register_all()
