from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from training.models import EvalPair, PolicyVersion, RankingScore, RewardModelVersion, TrainingRun
from training.runs import do_cancel_run
from training.services import LaunchRefused, do_promote_policy, launch


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "project", "version", "status", "parent", "reward_model", "created_at", "promoted_at"]
    list_filter = ["project", "status"]
    search_fields = ["project__name", "checkpoint"]
    list_select_related = ["project", "parent__project", "reward_model__project"]
    raw_id_fields = ["parent", "created_by_run", "reward_model"]
    actions = ["promote", "blind_evaluation"]

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
