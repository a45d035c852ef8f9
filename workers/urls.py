from django.urls import path

from workers import model_views, views

app_name = "workers"
urlpatterns = [
    path("slides/<int:slide_id>/analysis/", views.slide_jobs, name="slide-jobs"),
    path("jobs/<int:pk>/<str:action>/", views.job_action, name="job-action"),
    path("models/", model_views.model_list, name="model-list"),
    path("models/<int:pk>/", model_views.model_review, name="model-review"),
    path("models/<int:pk>/evaluate/", model_views.model_evaluate, name="model-evaluate"),
    path("models/<int:pk>/promote/", model_views.model_promote, name="model-promote"),
]
