from django.apps import AppConfig


class WecomConfig(AppConfig):
    name = "siyu.wecom"
    label = "wecom"
    verbose_name = "WeCom"

    def ready(self) -> None:
        from siyu.wecom.periodic import register_all

        register_all()
