from django.apps import AppConfig


class TagsConfig(AppConfig):
    name = "siyu.tags"
    label = "tags"
    verbose_name = "Tags"

    def ready(self) -> None:
        from siyu.tags import handlers, rules  # noqa: F401 - rules registers its kinds on import

        handlers.connect()
