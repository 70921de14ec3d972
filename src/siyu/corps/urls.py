from django.urls import path

from siyu.corps import settings_views, views

app_name = "corps"

urlpatterns = [
    path("staff/", views.staff_list, name="staff_list"),
    path("departments/", views.department_list, name="department_list"),
]

# Corp settings: users and roles, API keys, custom fields, the audit log.
urlpatterns += [
    path("settings/users/", settings_views.user_list, name="settings_users"),
    path("settings/users/new/", settings_views.user_create, name="settings_user_create"),
    path("settings/users/<int:user_id>/", settings_views.user_edit, name="settings_user_edit"),
    path("settings/users/<int:user_id>/active/", settings_views.user_active, name="settings_user_active"),
    path(
        "settings/users/<int:user_id>/password/", settings_views.user_password, name="settings_user_password"
    ),
    path("settings/api-keys/", settings_views.api_key_list, name="settings_api_keys"),
    path("settings/api-keys/new/", settings_views.api_key_create, name="settings_api_key_create"),
    path(
        "settings/api-keys/<int:key_id>/revoke/",
        settings_views.api_key_revoke,
        name="settings_api_key_revoke",
    ),
    path("settings/custom-fields/", settings_views.field_list, name="settings_fields"),
    path("settings/custom-fields/new/", settings_views.field_create, name="settings_field_create"),
    path(
        "settings/custom-fields/<int:field_id>/rename/",
        settings_views.field_rename,
        name="settings_field_rename",
    ),
    path(
        "settings/custom-fields/<int:field_id>/move/", settings_views.field_move, name="settings_field_move"
    ),
    path(
        "settings/custom-fields/<int:field_id>/delete/",
        settings_views.field_delete,
        name="settings_field_delete",
    ),
    path("settings/audit/", settings_views.audit_log, name="settings_audit"),
]
