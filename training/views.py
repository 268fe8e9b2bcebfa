"""Staff pages: a live page per training run (progress bar, charts, errors) and cancel; and a
project's metrics dashboard."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from labeling.models import Project
from training.dashboard import dashboard_charts
from training.metrics import project_metrics
from training.models import TrainingRun
from training.runs import do_cancel_run
from training.services import KINDS


def chart_data(run: TrainingRun) -> list[dict]:
    """For each chart: its title, axis label, and per metric the (step, value) points so far."""
    charts = []
    for chart in KINDS[run.kind].charts if run.kind in KINDS else ():
        series = {}
        for key in chart.keys:
            points = [(m.get("step", i + 1), m[key]) for i, m in enumerate(run.metrics) if m.get(key) is not None]
            if points:
                series[key] = points
        if series:
            charts.append({"title": chart.title, "unit": chart.unit, "series": series})
    return charts


@staff_member_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun.objects.select_related("project", "launched_by"), pk=run_id)
    template = "training/run.html#live" if request.htmx else "training/run.html"
    context = {
        "run": run,
        "charts": chart_data(run),
        "latest": (run.metrics or [{}])[-1],
        "steps": run.steps.order_by("id"),
    }
    return render(request, template, context)


@staff_member_required
@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=run_id)
    if do_cancel_run(run, by=request.user.get_username()):
        messages.info(request, f"Run {run.pk} is cancelled; its training process is being stopped.")
    else:
        messages.error(request, f"Run {run.pk} had already finished; nothing to cancel.")
    return redirect("training:run", run_id=run.pk)


@staff_member_required
def project_dashboard(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    metrics = project_metrics(project)
    context = {"project": project, "metrics": metrics, "charts": dashboard_charts(metrics)}
    return render(request, "training/dashboard.html", context)
