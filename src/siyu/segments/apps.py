from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "siyu.segments"
    label = "segments"
    verbose_name = "Segments"

    def ready(self) -> None:
        from siyu.segments.periodic import register_all

        register_all()
