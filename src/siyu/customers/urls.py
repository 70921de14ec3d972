from django.urls import path

from siyu.customers import detail_views, views

app_name = "customers"

urlpatterns = [
    path("", views.customer_list, name="list"),
    path("rows/", views.customer_rows, name="rows"),
    path("count/", views.customer_count, name="count"),
    path("export.csv", views.customer_export, {"fmt": "csv"}, name="export_csv"),
    path("export.xlsx", views.customer_export, {"fmt": "xlsx"}, name="export_xlsx"),
    path("bulk-tag/", views.customer_bulk_tag, name="bulk_tag"),
    path("jobs/<int:job_id>/", views.job_detail, name="job"),
    path("jobs/<int:job_id>/progress/", views.job_progress, name="job_progress"),
    path("jobs/<int:job_id>/resume/", views.job_resume, name="job_resume"),
    path("<int:customer_id>/", detail_views.customer_detail, name="detail"),
    path("<int:customer_id>/timeline/", detail_views.customer_timeline_page, name="timeline"),
    path("<int:customer_id>/custom-fields/", detail_views.customer_custom_fields, name="custom_fields"),
    path("<int:customer_id>/notes/", detail_views.customer_add_note, name="add_note"),
    path(
        "<int:customer_id>/relations/<int:relation_id>/remark/",
        detail_views.relation_remark,
        name="relation_remark",
    ),
    path(
        "<int:customer_id>/relations/<int:relation_id>/tags/",
        detail_views.relation_tags,
        name="relation_tags",
    ),
]
