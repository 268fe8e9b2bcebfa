"""Staff pages: a project's home (versions, the next round, the workers now, a launch button per
kind of run), a live page per training run (progress bar, charts, errors) and cancel; and a
project's metrics dashboard."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from labeling.models import Project
from training.forms import LaunchForm
from training.models import TrainingRun
from training.reports.charts import dashboard_charts
from training.reports.home import phase, project_overview, projects_overview, time_left
from training.reports.metrics import project_metrics
from training.reports.outcome import run_outcome
from training.runs import do_cancel_run
from training.services import KINDS, LaunchRefused, launch

FEW_POINTS = 3
"""A chart of fewer points than this per line shows its values as numbers instead."""


def chart_data(run: TrainingRun) -> list[dict]:
    """For each chart: its title, axis label, per metric the (step, value) points so far, and
    `table`, their values, when no line has FEW_POINTS points (a chart of one or two dots says
    less than the numbers)."""
    charts = []
    for chart in KINDS[run.kind].charts if run.kind in KINDS else ():
        series = {}
        for key in chart.keys:
            points = [(m.get("step", i + 1), m[key]) for i, m in enumerate(run.metrics) if m.get(key) is not None]
            if points:
                series[key] = points
        if not series:
            continue
        charts.append({"title": chart.title, "unit": chart.unit, "series": series})
        if max(len(points) for points in series.values()) < FEW_POINTS:
            charts[-1]["table"] = _values_table(series)
    return charts


def _values_table(series: dict[str, list]) -> list[tuple]:
    """(step, [each metric's value at that step, 3 significant digits, "" where it has none])."""
    steps = sorted({step for points in series.values() for step, _ in points}, key=str)
    at = {key: dict(points) for key, points in series.items()}
    return [(step, [f"{at[key][step]:.3g}" if step in at[key] else "" for key in series]) for step in steps]


@staff_member_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun.objects.select_related("project", "launched_by"), pk=run_id)
    template = "training/run.html#live" if request.htmx else "training/run.html"
    context = {
        "run": run,
        "charts": chart_data(run),
        "latest": (run.metrics or [{}])[-1],
        "phase": "" if run.is_finished else phase(run),
        "time_left": time_left(run),
        "outcome": run_outcome(run),
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
def projects(request: HttpRequest) -> HttpResponse:
    """The training side's first page: every project with its versions, its next round and what runs."""
    return render(request, "training/projects.html", {"rows": projects_overview()})


@staff_member_required
def project_dashboard(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    metrics = project_metrics(project)
    context = {"project": project, "metrics": metrics, "charts": dashboard_charts(metrics)}
    return render(request, "training/dashboard.html", context)


@staff_member_required
def project_home(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    template = "training/project.html#workers" if request.htmx else "training/project.html"
    return render(request, template, {"project": project, **project_overview(project)})


@staff_member_required
@require_POST
def project_launch(request: HttpRequest, project_id: int) -> HttpResponse:
    """Launches a run through `launch`, as the admin's actions do: on to its page, or back to the
    project's home with the refusal in words (409, or 503 without a task queue; 422 for a bad input)."""
    project = get_object_or_404(Project, pk=project_id)
    form = LaunchForm(project, request.POST)
    if not form.is_valid():
        refusal, status = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()), 422
    else:
        try:
            run = launch(project, form.cleaned_data["kind"], launched_by=request.user, **form.inputs())
        except LaunchRefused as exc:
            refusal, status = str(exc), exc.http_status
        else:
            messages.success(request, f"{run.get_kind_display()} queued as run {run.pk}.")
            return redirect(run)
    context = {"project": project, **project_overview(project, posted=request.POST.dict()), "refusal": refusal}
    return render(request, "training/project.html", {**context, "refused": request.POST.get("kind")}, status=status)
