from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

admin.site.site_header = "RLHF administration"
admin.site.site_title = "RLHF admin"

urlpatterns = [
    path("", include("labeling.urls")),
    path("training/", include("training.urls")),
    path("api/", include("webapp.api_urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
