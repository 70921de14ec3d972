from django.urls import path

from siyu.wecom import outbox_views, views

app_name = "wecom"

urlpatterns = [
    path("callback/<str:corpid>/", views.callback, name="callback"),
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/stats/", views.inbox_stats_fragment, name="inbox_stats"),
    path("inbox/<int:event_id>/", views.inbox_event, name="inbox_event"),
    path("inbox/<int:event_id>/replay/", views.inbox_replay, name="inbox_replay"),
    path("outbox/", outbox_views.outbox, name="outbox"),
    path("outbox/stats/", outbox_views.outbox_stats_fragment, name="outbox_stats"),
    path("outbox/<int:row_id>/", outbox_views.outbox_write, name="outbox_write"),
    path("outbox/<int:row_id>/requeue/", outbox_views.outbox_requeue, name="outbox_requeue"),
    path("sync/", views.sync_list, name="sync_list"),
    path("sync/start/", views.sync_start, name="sync_start"),
    path("sync/<int:run_id>/", views.sync_detail, name="sync_detail"),
    path("sync/<int:run_id>/progress/", views.sync_progress_fragment, name="sync_progress"),
    path("sync/<int:run_id>/resume/", views.sync_resume, name="sync_resume"),
]
