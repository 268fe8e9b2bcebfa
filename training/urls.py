from django.urls import path

from training import views

app_name = "training"
urlpatterns = [
    path("", views.projects, name="projects"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="cancel"),
    path("projects/<int:project_id>/", views.project_home, name="project"),
    path("projects/<int:project_id>/launch/", views.project_launch, name="launch"),
    path("projects/<int:project_id>/dashboard/", views.project_dashboard, name="dashboard"),
]
