from collections.abc import Callable

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from labeling.conversations import turns
from labeling.exporting import streamed_export
from labeling.forms import ComparisonTaskAdminForm, ExportForm, PromptImportForm
from labeling.importing import ImportFileError, do_import_prompt_file
from labeling.models import (
    Assignment,
    ComparisonTask,
    Completion,
    Demonstration,
    Judge,
    Project,
    Prompt,
    Ranking,
    TaskCompletion,
    order_in_letters,
)
from labeling.quality import flagged_labelers
from labeling.services import (
    conversation_tree,
    do_ask_for_demonstrations,
    do_exclude_rankings,
    do_hold_out_prompts,
    do_set_gold_order,
)


@admin.register(Judge)
class JudgeAdmin(admin.ModelAdmin):
    """A project's AI judge: it ranks tasks as an AI labeler (`manage.py judge`, or the project's action
    'AI judge'). An endpoint's key is never entered here: only the name of the worker's variable."""

    list_display = ["project", "identity", "prompt_version", "weight_cap", "account", "updated_at"]
    fields = [
        "project", "backend", "model", "base_url", "api_key_env", "max_calls", "judging_prompt", "weight_cap",
        "ranks_as",
    ]  # fmt: skip
    readonly_fields = ["ranks_as"]

    @admin.display(description="ranks as")
    def ranks_as(self, obj: Judge) -> str:
        if not obj.pk:
            return "An AI labeler account, made when the judge is saved."
        return f"{obj.account.get_username()} (AI), prompt version {obj.prompt_version}"


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    """A project's labeling settings, its prompt import and its export. Training registers its own
    subclass in its place (training.admin), which adds the recipe, the launch actions and the links
    to the project's home and dashboard."""

    list_display = ["name", "k", "overlap", "selection", "created_at"]
    list_filter = ["k"]
    search_fields = ["name"]
    filter_horizontal = ["labelers"]
    fieldsets = [
        (None, {"fields": ["name", "guidelines", "labelers"]}),
        (
            "Comparisons",
            {
                "fields": [
                    "k",
                    "overlap",
                    "eval_ratio",
                    "selection",
                    "control_share",
                    "lease_seconds",
                    "collect_likert",
                    "collect_rationale",
                    "suggestions",
                ]
            },
        ),
        ("Quality", {"fields": ["agreement_threshold", "gold_rate", "flagged_labelers", "ai_judge"]}),
    ]
    readonly_fields = ["flagged_labelers", "ai_judge"]

    change_form_template = "admin/labeling/project/change_form.html"  # links to import prompts and export

    @admin.display(description="flagged labelers")
    def flagged_labelers(self, obj: Project) -> str:
        flagged = flagged_labelers(obj) if obj.pk else {}
        if not flagged:
            return "None: no labeler is below the agreement threshold."
        items = format_html_join(
            "", "<li><strong>{}</strong>: {}</li>", ((n, "; ".join(r)) for n, r in flagged.items())
        )
        return format_html("<ul>{}</ul>", items)

    @admin.display(description="AI judge")
    def ai_judge(self, obj: Project) -> str:
        judge = Judge.objects.filter(project=obj).first() if obj.pk else None
        if judge is None:
            add = reverse("admin:labeling_judge_add")
            return format_html(
                'None. <a href="{}?project={}">Set one</a> to rank tasks beside the labelers.', add, obj.pk or ""
            )
        change = reverse("admin:labeling_judge_change", args=[judge.pk])
        return format_html('<a href="{}">{}</a>, prompt version {}', change, judge.identity, judge.prompt_version)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:project_id>/import-prompts/", view(self.import_prompts), name="labeling_project_import"),
            path("<int:project_id>/export/", view(self.export), name="labeling_project_export"),
            path("<int:project_id>/export/download/", view(self.download), name="labeling_project_download"),
            *super().get_urls(),
        ]

    def _project(self, request: HttpRequest, project_id: int, may: Callable[[HttpRequest, Project], bool]) -> Project:
        project = self.get_object(request, str(project_id))
        if project is None or not may(request, project):
            raise PermissionDenied
        return project

    def _page(self, request: HttpRequest, project: Project, template: str, context: dict, status: int = 200):
        context = {**self.admin_site.each_context(request), "opts": self.opts, "original": project, **context}
        return render(request, f"admin/labeling/project/{template}", context, status=status)

    def import_prompts(self, request: HttpRequest, project_id: int) -> HttpResponse:
        project = self._project(request, project_id, self.has_change_permission)
        form = PromptImportForm(request.POST or None, request.FILES or None)
        report = None
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                report = do_import_prompt_file(
                    project, upload, upload.name, form.cleaned_data["format"] or None, form.cleaned_data["atomic"]
                )
            except ImportFileError as exc:
                form.add_error("file", str(exc))
        status = 422 if form.errors else 200
        context = {"title": f"Import prompts into {project}", "form": form, "report": report}
        return self._page(request, project, "import_prompts.html", context, status)

    def export(self, request: HttpRequest, project_id: int) -> HttpResponse:
        project = self._project(request, project_id, self.has_view_permission)
        context = {"title": f"Export preferences of {project}", "form": ExportForm()}
        return self._page(request, project, "export.html", context)

    def download(self, request: HttpRequest, project_id: int) -> HttpResponse:
        project = self._project(request, project_id, self.has_view_permission)
        form = ExportForm(request.GET)
        if not form.is_valid():
            return HttpResponseBadRequest(" ".join(str(e) for errors in form.errors.values() for e in errors))
        return streamed_export(project, **form.cleaned_data)


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["id", "short_text", "turns", "project", "source", "needs_demonstration", "heldout", "created_at"]
    list_filter = ["project", "needs_demonstration", "heldout", "source", ("parent", admin.EmptyFieldListFilter)]
    search_fields = ["text", "source"]
    list_select_related = ["project"]
    autocomplete_fields = ["project"]
    raw_id_fields = ["parent"]
    readonly_fields = ["text_sha256", "created_at", "conversation_tree"]
    show_full_result_count = False
    actions = ["ask_for_demonstrations", "stop_asking_for_demonstrations", "hold_out", "return_to_training"]

    @admin.display(description="text")
    def short_text(self, obj: Prompt) -> str:
        return obj.text[:100]

    @admin.display(description="user turns")
    def turns(self, obj: Prompt) -> int:
        return turns(obj.chat)

    @admin.display(description="conversation tree")
    def conversation_tree(self, obj: Prompt) -> str:
        """The tree this prompt belongs to, from its root: each continuation under the one it continues."""
        if obj.pk is None:
            return "–"
        root = obj
        while root.parent_id is not None:
            root = root.parent
        tree = conversation_tree(root)
        if len(tree) == 1:
            return "No continuations."
        link = lambda p: reverse("admin:labeling_prompt_change", args=[p.pk])  # noqa: E731
        rows = format_html_join(
            "",
            '<li>{}<a href="{}">prompt {}</a>: {}{}</li>',
            (("\u2003" * (depth - 1) + "↳ " if depth else "", link(p), p.pk, p.text[:80],
              " (this one)" if p.pk == obj.pk else "") for depth, p in tree),
        )  # fmt: skip
        return format_html("<ul>{}</ul>", rows)

    @admin.action(description="Ask labelers for ideal answers (demonstrations)")
    def ask_for_demonstrations(self, request: HttpRequest, queryset: QuerySet[Prompt]) -> None:
        count = do_ask_for_demonstrations(queryset, ask=True)
        self.message_user(request, f"{count} prompts now ask labelers for an ideal answer.")

    @admin.action(description="Stop asking for ideal answers")
    def stop_asking_for_demonstrations(self, request: HttpRequest, queryset: QuerySet[Prompt]) -> None:
        count = do_ask_for_demonstrations(queryset, ask=False)
        self.message_user(request, f"{count} prompts no longer ask for an ideal answer.")

    @admin.action(description="Hold out for evaluation (never trained on; blind evaluations use them)")
    def hold_out(self, request: HttpRequest, queryset: QuerySet[Prompt]) -> None:
        try:
            count = do_hold_out_prompts(queryset, hold_out=True)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        else:
            self.message_user(request, f"{count} prompts are held out for evaluation.")

    @admin.action(description="Return to training (no longer held out)")
    def return_to_training(self, request: HttpRequest, queryset: QuerySet[Prompt]) -> None:
        self.message_user(request, f"{do_hold_out_prompts(queryset, hold_out=False)} prompts can be trained on again.")


@admin.register(Completion)
class CompletionAdmin(admin.ModelAdmin):
    list_display = ["id", "short_text", "prompt_id", "policy_version", "token_count", "finish_reason", "created_at"]
    list_filter = ["finish_reason", "policy_version__project"]
    search_fields = ["text"]
    list_select_related = ["policy_version__project"]
    raw_id_fields = ["prompt", "policy_version"]
    show_full_result_count = False

    @admin.display(description="text")
    def short_text(self, obj: Completion) -> str:
        return obj.text[:100]


class TaskCompletionInline(admin.TabularInline):
    model = TaskCompletion
    raw_id_fields = ["completion"]
    extra = 0


@admin.register(ComparisonTask)
class ComparisonTaskAdmin(admin.ModelAdmin):
    form = ComparisonTaskAdminForm
    list_display = [
        "id", "project", "prompt_id", "policy_version", "kind", "state", "target_overlap", "uncertainty", "chosen_by",
        "created_at",
    ]  # fmt: skip
    list_filter = ["project", "kind", "state", "chosen_by"]
    readonly_fields = ["uncertainty", "chosen_by"]  # set by the worker (training.executors.selection)
    search_fields = ["prompt__text"]
    list_select_related = ["project", "policy_version__project"]
    raw_id_fields = ["prompt", "policy_version"]
    inlines = [TaskCompletionInline]
    show_full_result_count = False

    def save_model(self, request: HttpRequest, obj: ComparisonTask, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and form.cleaned_data["expected_order"] != obj.gold_order:
            do_set_gold_order(obj, form.cleaned_data["expected_order"])


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "task_id", "labeler", "state", "leased_until", "created_at"]
    list_filter = ["state", "task__project"]
    search_fields = ["labeler__username"]
    list_select_related = ["labeler"]
    raw_id_fields = ["task", "labeler"]
    show_full_result_count = False


@admin.register(Ranking)
class RankingAdmin(admin.ModelAdmin):
    list_display = ["id", "task_id", "labeler", "ai", "order_letters", "flags", "time_spent_ms", "created_at"]
    search_fields = ["labeler__username", "rationale"]
    list_select_related = ["labeler", "task"]
    raw_id_fields = ["task", "labeler"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_filter = ["task__project", "task__kind", "ai", "excluded", "created_at"]
    actions = ["exclude_from_training", "include_in_training"]
    readonly_fields = ["order_letters", "ai", "judged_by", "suggestion"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Ranking]:
        return super().get_queryset(request).prefetch_related("task__items")

    @admin.display(description="order (best first)")
    def order_letters(self, obj: Ranking) -> str:
        """The order in the letters the labeler saw (A, B, C: the task's display positions)."""
        return order_in_letters(obj.order, {item.completion_id: item.position for item in obj.task.items.all()})

    @admin.action(description="Exclude from training (unusable)")
    def exclude_from_training(self, request: HttpRequest, queryset: QuerySet[Ranking]) -> None:
        self.message_user(request, f"{do_exclude_rankings(queryset, exclude=True)} rankings excluded from training.")

    @admin.action(description="Include in training again")
    def include_in_training(self, request: HttpRequest, queryset: QuerySet[Ranking]) -> None:
        self.message_user(request, f"{do_exclude_rankings(queryset, exclude=False)} rankings included in training.")


@admin.register(Demonstration)
class DemonstrationAdmin(admin.ModelAdmin):
    list_display = ["id", "prompt_id", "labeler", "short_text", "created_at"]
    list_filter = ["prompt__project"]
    search_fields = ["text", "labeler__username"]
    list_select_related = ["labeler"]
    raw_id_fields = ["prompt", "labeler"]

    @admin.display(description="text")
    def short_text(self, obj: Demonstration) -> str:
        return obj.text[:100]
