from django.urls import path

from labeling import views

app_name = "labeling"
urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<int:project_id>/next/", views.label_next, name="next"),
    path("projects/<int:project_id>/demonstrations/", views.demonstrations, name="demonstrations"),
    path("tasks/<int:task_id>/", views.task, name="task"),
    path("tasks/<int:task_id>/ranking/", views.submit_ranking, name="submit"),
    path("tasks/<int:task_id>/skip/", views.skip_task, name="skip"),
    path("tasks/<int:task_id>/continue/", views.continue_conversation, name="continue"),
]
