"""Training's admin: the versions and runs, and the project's page as staff see it, which is
labeling's with the project's recipe inside it and a launch action per kind of run."""

from functools import partial

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from labeling.admin import ProjectAdmin as LabelingProjectAdmin
from labeling.models import Project
from training.forms import RecipeForm
from training.models import EvalPair, PolicyVersion, RankingScore, Recipe, RewardModelVersion, TrainingRun
from training.runs import do_cancel_run
from training.services import KINDS, LaunchRefused, do_promote_policy, do_register_base_policy, launch


class RecipeFormSet(BaseInlineFormSet):
    def get_form_kwargs(self, index: int | None) -> dict:
        return {**super().get_form_kwargs(index), "project": self.instance}  # as posted, maybe unsaved


class RecipeInline(admin.StackedInline):
    model = Recipe
    form = RecipeForm
    formset = RecipeFormSet
    can_delete = False
    min_num = max_num = 1
    verbose_name = verbose_name_plural = "Training recipe"
    fieldsets = [
        (None, {"fields": ["base_model"]}),
        ("Sampling", {"fields": ["temperature", "top_p", "top_k", "max_new_tokens"]}),
        (
            "Training rounds",
            {
                "fields": [
                    "algorithm",
                    "dpo_trains_reward_model",
                    "retrain_threshold",
                    "sft_threshold",
                    "promotion",
                    "promotion_gate",
                    "gate_max_disagreement_ratio",
                    "gate_max_length_change",
                    "gate_max_eos_change",
                    "gate_blind_pairs",
                    "reward_model_config",
                    "ppo_config",
                    "dpo_config",
                    "sft_config",
                ]
            },
        ),
    ]


admin.site.unregister(Project)


@admin.register(Project)
class ProjectAdmin(LabelingProjectAdmin):
    """Labeling's project page with the recipe, the links to the project's home and dashboard, and
    one action per kind of run that has one (training.services.KINDS). A new project gets its base
    model as the active version-0 policy in the same transaction."""

    inlines = [RecipeInline]
    list_display = ["name", "base_model", "k", "overlap", "retrain_threshold", "promotion", "pages", "created_at"]
    list_filter = ["recipe__promotion", "k"]
    list_select_related = ["recipe"]
    search_fields = ["name", "recipe__base_model"]
    fieldsets = [(None, {"fields": ["pages"]}), *LabelingProjectAdmin.fieldsets]
    readonly_fields = ["pages", *LabelingProjectAdmin.readonly_fields]
    change_form_template = "admin/training/project/change_form.html"  # adds the project home's link

    @admin.display(description="base model")
    def base_model(self, obj: Project) -> str:
        return obj.recipe.base_model

    @admin.display(description="retrain threshold")
    def retrain_threshold(self, obj: Project) -> int:
        return obj.recipe.retrain_threshold

    @admin.display(description="promotion")
    def promotion(self, obj: Project) -> str:
        return obj.recipe.get_promotion_display()

    @admin.display(description="dashboard")
    def pages(self, obj: Project) -> str:
        if obj.pk is None:
            return "-"
        return format_html(
            '<a href="{}">project home</a> · <a href="{}">metrics dashboard</a>',
            reverse("training:project", args=[obj.pk]),
            reverse("training:dashboard", args=[obj.pk]),
        )

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        for kind, spec in KINDS.items():
            if spec.action is not None:
                name, label = spec.action
                actions[name] = (partial(ProjectAdmin._launch, kind=kind), name, label)
        return actions

    def _launch(self, request: HttpRequest, queryset: QuerySet[Project], kind: str) -> None:
        for project in queryset:
            try:
                run = launch(project, kind, launched_by=request.user)
            except LaunchRefused as exc:
                self.message_user(request, f"{project}: {exc}", messages.ERROR)
            else:
                link = format_html('<a href="{}">follow run {}</a>', run.get_absolute_url(), run.pk)
                self.message_user(request, format_html("{}: {} queued; {}.", project, run.get_kind_display(), link))

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)  # the recipe, from its inline
        if not change:
            do_register_base_policy(form.instance)


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "project", "version", "status", "parent", "reward_model", "created_at", "promoted_at"]
    list_filter = ["project", "status"]
    search_fields = ["project__name", "checkpoint"]
    list_select_related = ["project", "parent__project", "reward_model__project"]
    raw_id_fields = ["parent", "created_by_run", "reward_model"]
    actions = ["promote", "blind_evaluation"]
    readonly_fields = ["gate_checks", "probe"]

    @admin.display(description="promotion gate")
    def gate_checks(self, obj: PolicyVersion) -> str:
        if not obj.gate:
            return "Not weighed: promoted by hand, by the recipe's rule without the gate, or from SFT."
        rows = ((("passed" if c["passed"] else "FAILED"), c["name"], c["text"]) for c in obj.gate)
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}: <strong>{}</strong> — {}</li>", rows))

    @admin.action(description="Promote to active (retires the current one)")
    def promote(self, request: HttpRequest, queryset: QuerySet[PolicyVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one policy version to promote.", messages.ERROR)
            return
        policy = do_promote_policy(queryset.get())
        self.message_user(request, f"{policy} is now active; the previous active version is retired.")

    @admin.action(description="Blind human evaluation of the two selected versions (up to 50 held-out prompts)")
    def blind_evaluation(self, request: HttpRequest, queryset: QuerySet[PolicyVersion]) -> None:
        versions = list(queryset.order_by("version"))
        if len(versions) != 2:
            self.message_user(request, "Select exactly two policy versions of one project.", messages.ERROR)
            return
        a, b = versions  # b, the newer one, is the side whose win rate is reported
        try:
            run = launch(a.project, TrainingRun.Kind.BLIND_EVAL, launched_by=request.user, prompts=50, a=a, b=b)
        except LaunchRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        link = format_html('<a href="{}">follow run {}</a>', run.get_absolute_url(), run.pk)
        self.message_user(
            request, format_html("Blind evaluation of v{} vs v{} queued; {}.", b.version, a.version, link)
        )


@admin.register(RewardModelVersion)
class RewardModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "project",
        "version",
        "heldout_accuracy",
        "accuracy",
        "tie_rate",
        "rankings_count",
        "created_at",
    ]
    list_filter = ["project"]
    search_fields = ["project__name", "checkpoint"]
    list_select_related = ["project"]
    raw_id_fields = ["parent", "created_by_run"]


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "status", "progress_percent", "live_page", "created_at", "finished_at"]
    actions = ["cancel"]

    @admin.display(description="progress")
    def progress_percent(self, run: TrainingRun) -> str:
        return f"{run.progress:.0%}"

    @admin.display(description="live page")
    def live_page(self, run: TrainingRun) -> str:
        return format_html('<a href="{}">progress and charts</a>', run.get_absolute_url())

    @admin.action(description="Cancel (stops the training process)")
    def cancel(self, request: HttpRequest, queryset: QuerySet[TrainingRun]) -> None:
        cancelled = sum(do_cancel_run(run, by=request.user.get_username()) for run in queryset)
        self.message_user(request, f"{cancelled} runs cancelled; finished runs were left as they were.")

    list_filter = ["project", "kind", "status"]
    search_fields = ["project__name", "error"]
    list_select_related = ["project"]
    raw_id_fields = ["launched_by", "parent", "policy", "baseline", "reward_model", "through_ranking"]
    readonly_fields = ["metrics", "log_tail", "error", "started_at", "heartbeat_at", "finished_at"]


@admin.register(RankingScore)
class RankingScoreAdmin(admin.ModelAdmin):
    list_display = ["id", "ranking_id", "reward_model", "agreed", "pairs", "created_at"]
    list_filter = ["reward_model__project"]
    list_select_related = ["reward_model__project"]
    raw_id_fields = ["ranking", "reward_model"]
    show_full_result_count = False


@admin.register(EvalPair)
class EvalPairAdmin(admin.ModelAdmin):
    list_display = ["id", "task_id", "version_a", "version_b", "run_id"]
    list_filter = ["run__project"]
    list_select_related = ["version_a__project", "version_b__project"]
    raw_id_fields = ["task", "run", "version_a", "version_b"]
