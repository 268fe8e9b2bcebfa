"""The labeler's pages. Each view parses, checks access, calls a service and renders.

Forms post plainly and redirect without JavaScript; with htmx the next task or prompt is
swapped in place (`page.html#fragment`).
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import push_url

from labeling.access import get_assignment_for_labeler, get_project_for_labeler, projects_with_counts
from labeling.forms import parse_ranking_form, skip_reason
from labeling.models import Assignment, Project, Ranking
from labeling.quality import with_agreement
from labeling.services import (
    TaskNotFound,
    continuation_refused,
    do_assign_next_task,
    do_continue_conversation,
    do_skip_task,
    do_store_demonstration,
    do_submit_ranking,
    prompts_needing_demonstration,
)
from labeling.task_view import judge_comparison, refusal_message, submitted_context, task_context, thread

POLL_SECONDS = {True: 5, False: 20}  # how often the out-of-tasks page looks for a task: while sampling runs, or not


def progress(project: Project, user) -> dict:
    """The labeler's figures for the task page: rankings sent today, tasks ready for them, ideal
    answers asked of them, and whether more comparisons are being written."""
    row = (
        projects_with_counts(user)
        .filter(pk=project.pk)
        .values("done_today", "tasks_left", "demonstrations_left", "sampling")
    )
    return row.first() or {}


def _nothing_left(request: HttpRequest, project: Project, notice: str = "") -> dict:
    figures = progress(project, request.user)
    return {"project": project, "nothing_left": True, "notice": notice, "progress": figures,
            "poll_seconds": POLL_SECONDS[bool(figures.get("sampling"))]}  # fmt: skip


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = with_agreement(list(projects_with_counts(request.user)), request.user)
    sampling = any(project.sampling for project in projects)
    return render(request, "labeling/home.html", {"projects": projects, "sampling": sampling})


@login_required
def label_next(request: HttpRequest, project_id: int) -> HttpResponse:
    """The next task; with nothing left, a page that looks again every few seconds (htmx) and swaps
    the next task in when one is ready."""
    project = get_project_for_labeler(request.user, project_id)
    assignment = do_assign_next_task(project, request.user)
    if assignment is None:
        template = "labeling/task.html#task" if request.htmx else "labeling/task.html"
        return render(request, template, _nothing_left(request, project))
    if request.htmx:
        context = {**task_context(assignment), "progress": progress(project, request.user)}
        response = render(request, "labeling/task.html#task", context)
        return push_url(response, reverse("labeling:task", args=[assignment.task_id]))
    return redirect("labeling:task", task_id=assignment.task_id)


@login_required
def task(request: HttpRequest, task_id: int) -> HttpResponse:
    """A leased task to rank; one already ranked or skipped, read-only, with the way on."""
    assignment = get_assignment_for_labeler(request.user, task_id)
    figures = progress(assignment.task.project, request.user)
    if assignment.state in (Assignment.State.SUBMITTED, Assignment.State.SKIPPED):
        ranking = Ranking.objects.filter(task_id=task_id, labeler=request.user).first()
        return render(request, "labeling/task.html", {**submitted_context(assignment, ranking), "progress": figures})
    return render(request, "labeling/task.html", {**task_context(assignment), "progress": figures})


def _next_task_response(request: HttpRequest, assignment: Assignment, notice: str = "") -> HttpResponse:
    """After a submit or skip: the next task in place (htmx), or a redirect to it; `notice` says
    what became of the one before."""
    project = assignment.task.project
    if not request.htmx:
        if notice:
            messages.info(request, notice)
        return redirect("labeling:next", project_id=project.pk)
    following = do_assign_next_task(project, request.user)
    if following is None:
        return push_url(
            render(request, "labeling/task.html#task", _nothing_left(request, project, notice)),
            reverse("labeling:next", args=[project.pk]),
        )
    context = {**task_context(following), "notice": notice, "progress": progress(project, request.user)}
    return push_url(
        render(request, "labeling/task.html#task", context), reverse("labeling:task", args=[following.task_id])
    )


def _form_error(request: HttpRequest, assignment: Assignment, error: ValidationError) -> HttpResponse:
    context = {**task_context(assignment, posted=request.POST), "progress": progress(assignment.task.project,
                                                                                      request.user)}  # fmt: skip
    context["error"] = refusal_message(error, context["completions"])
    template = "labeling/task.html#task" if request.htmx else "labeling/task.html"
    return render(request, template, context, status=422)


@login_required
@require_POST
def submit_ranking(request: HttpRequest, task_id: int) -> HttpResponse:
    assignment = get_assignment_for_labeler(request.user, task_id)
    try:
        posted = parse_ranking_form(request.POST)
        ranking, _ = do_submit_ranking(
            task_id,
            request.user,
            posted.order,
            posted.likert,
            posted.rationale,
            posted.flags,
            posted.time_spent_ms,
            prefilled=request.POST.get("prefilled") == "1",
        )
    except TaskNotFound:
        raise Http404("No such task among yours.") from None
    except ValidationError as error:
        if error.code == "lease_expired":
            return _next_task_response(request, assignment, notice=" ".join(error.messages))
        return _form_error(request, assignment, error)
    notice = f"Your ranking of task {task_id} is saved. {judge_comparison(assignment.task, ranking)}".rstrip()
    if not continuation_refused(assignment.task):  # the labeler may carry the conversation on from here
        return _submitted_response(request, assignment, notice)
    return _next_task_response(request, assignment, notice=notice)


def _submitted_response(request: HttpRequest, assignment: Assignment, notice: str = "", error: str = "",
                        status: int = 200) -> HttpResponse:  # fmt: skip
    """The ranked task read-only (with, where the project continues conversations, the form for the next
    user message), in place (htmx) or as a page."""
    assignment.refresh_from_db()
    ranking = Ranking.objects.filter(task_id=assignment.task_id, labeler=request.user).first()
    context = {**submitted_context(assignment, ranking), "progress": progress(assignment.task.project, request.user),
               "notice": notice, "continue_error": error}  # fmt: skip
    if request.htmx:
        response = render(request, "labeling/task.html#task", context, status=status)
        return push_url(response, reverse("labeling:task", args=[assignment.task_id]))
    return render(request, "labeling/task.html", context, status=status)


@login_required
@require_POST
def continue_conversation(request: HttpRequest, task_id: int) -> HttpResponse:
    """The labeler's next user message under the best reply: a new conversation prompt whose replies
    are sampled into a new task."""
    assignment = get_assignment_for_labeler(request.user, task_id)
    try:
        prompt, _ = do_continue_conversation(task_id, request.user, request.POST.get("text", ""))
    except TaskNotFound:
        raise Http404("No such task among yours.") from None
    except ValidationError as error:
        if error.code == "unranked":
            return _form_error(request, assignment, error)
        return _submitted_response(request, assignment, error=" ".join(error.messages), status=422)
    notice = (f"The conversation goes on as prompt {prompt.pk}: the model's replies to your message will come as "
              "a new task once they are sampled.")  # fmt: skip
    return _next_task_response(request, assignment, notice=notice)


@login_required
@require_POST
def skip_task(request: HttpRequest, task_id: int) -> HttpResponse:
    assignment = get_assignment_for_labeler(request.user, task_id)
    try:
        do_skip_task(task_id, request.user, skip_reason(request.POST))
    except ValidationError as error:
        return _form_error(request, assignment, error)
    return _next_task_response(request, assignment, notice=f"Task {task_id} skipped.")


@login_required
def demonstrations(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for_labeler(request.user, project_id)
    prompt = prompts_needing_demonstration(project, request.user).first()
    error, status, text = "", 200, ""
    if request.method == "POST":
        posted = prompts_needing_demonstration(project, request.user).filter(pk=request.POST.get("prompt")).first()
        text = request.POST.get("text", "")
        if posted is None:
            raise Http404("No such prompt awaiting your demonstration.")
        try:
            do_store_demonstration(posted, request.user, text)
        except ValidationError as exc:
            error, status, prompt = " ".join(exc.messages), 422, posted
        else:
            if not request.htmx:
                return redirect(reverse("labeling:demonstrations", args=[project.pk]) + "?saved=1")
            prompt, text = prompts_needing_demonstration(project, request.user).first(), ""
    saved = request.method == "POST" or "saved" in request.GET
    context = {"project": project, "prompt": prompt, "error": error, "text": text, "saved": saved,
               "thread": thread(prompt) if prompt else None}  # fmt: skip
    context["asks_for_none"] = prompt is None and not project.prompts.filter(needs_demonstration=True).exists()
    template = "labeling/demonstrations.html#demo" if request.htmx else "labeling/demonstrations.html"
    return render(request, template, context, status=status)
