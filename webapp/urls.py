from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView


class FaviconRedirect(RedirectView):
    """/favicon.ico, which browsers and tools ask for whatever the page links, to the static icon.
    Not permanent, and resolved per request: in production the file's name carries a hash of its
    content, read from the manifest that collectstatic writes."""

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("img/favicon.ico")


admin.site.site_header = "RLHF administration"
admin.site.site_title = "RLHF admin"

handler404 = "webapp.api_views.not_found"

urlpatterns = [
    path("", include("labeling.urls")),
    path("training/", include("training.urls")),
    path("api/", include("webapp.api_urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("favicon.ico", FaviconRedirect.as_view()),
]
