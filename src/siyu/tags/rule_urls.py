from django.urls import path

from siyu.tags import rule_views

app_name = "tagging"

urlpatterns = [
    path("", rule_views.rule_list, name="rules"),
    path("new/", rule_views.rule_create, name="rule_create"),
    path("<int:rule_id>/", rule_views.rule_edit, name="rule_edit"),
    path("<int:rule_id>/delete/", rule_views.rule_delete, name="rule_delete"),
]
