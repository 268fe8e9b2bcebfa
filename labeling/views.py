from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from labeling.access import projects_for_labeler


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = list(projects_for_labeler(request.user))
    return render(request, "labeling/home.html", {"projects": projects})
