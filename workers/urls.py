from django.urls import path

from workers import views

app_name = "workers"
urlpatterns = [
    path("slides/<int:slide_id>/analysis/", views.slide_jobs, name="slide-jobs"),
    path("jobs/<int:pk>/<str:action>/", views.job_action, name="job-action"),
]
