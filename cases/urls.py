from django.urls import path

from cases import views

app_name = "cases"
urlpatterns = [
    path("", views.home, name="home"),
    path("cases/", views.case_list, name="case-list"),
    path("cases/new/", views.case_create, name="case-create"),
    path("cases/<int:pk>/", views.case_detail, name="case-detail"),
    path("patients/", views.patient_list, name="patient-list"),
    path("patients/new/", views.patient_create, name="patient-create"),
    path("slides/<int:pk>/", views.slide_detail, name="slide-detail"),
    path("slides/<int:pk>/thumbnail.png", views.slide_thumbnail, name="slide-thumbnail"),
    path("slides/<int:pk>/images/<str:name>.png", views.slide_associated_image, name="slide-associated-image"),
    path("annotate/", views.annotator_slides, name="annotator-slides"),
    path("annotate/<uuid:pseudo_id>/thumbnail.png", views.pseudo_slide_thumbnail, name="pseudo-slide-thumbnail"),
    path("reports/", views.report_list, name="report-list"),
    path("reports/<int:pk>/", views.report_detail, name="report-detail"),
    path("cases/<int:pk>/report/", views.case_report, name="case-report"),
]
