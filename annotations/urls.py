from django.urls import path

from annotations import views

app_name = "annotations"
urlpatterns = [
    path("annotate/sessions/", views.session_list, name="session-list"),
    path("annotate/sessions/<int:pk>/", views.session_page, name="session"),
    path("annotate/sessions/<int:pk>/review/", views.session_review, name="session-review"),
    path("annotate/projects/", views.project_list, name="project-list"),
    path("annotate/projects/<int:pk>/", views.project_page, name="project"),
    path("annotate/projects/<int:pk>/train/", views.project_train, name="project-train"),
    path("annotate/projects/<int:pk>/training-runs/<int:run_id>/cancel/", views.project_training_cancel,
         name="project-training-cancel"),
    path("annotate/projects/<int:pk>/annotators/", views.project_annotators, name="project-annotators"),
    path("annotate/projects/<int:pk>/fields/sample/", views.project_sample_fields, name="project-sample-fields"),
    path("annotate/projects/<int:pk>/fields/draw/", views.project_draw_field, name="project-draw-field"),
    path("annotate/fields/<int:pk>/review/", views.field_review, name="field-review"),
]
