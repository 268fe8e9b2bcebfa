from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.runs import do_cancel_run
from training.services import do_promote_policy


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "project", "version", "status", "parent", "reward_model", "created_at", "promoted_at"]
    list_filter = ["project", "status"]
    search_fields = ["project__name", "checkpoint"]
    list_select_related = ["project", "parent__project", "reward_model__project"]
    raw_id_fields = ["parent", "created_by_run", "reward_model"]
    actions = ["promote"]

    @admin.action(description="Promote to active (retires the current one)")
    def promote(self, request: HttpRequest, queryset: QuerySet[PolicyVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one policy version to promote.", messages.ERROR)
            return
        policy = do_promote_policy(queryset.get())
        self.message_user(request, f"{policy} is now active; the previous active version is retired.")


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
    search_fields = ["project__name", "celery_task_id", "error"]
    list_select_related = ["project"]
    raw_id_fields = ["launched_by"]
    readonly_fields = ["metrics", "log_tail", "error", "celery_task_id", "started_at", "heartbeat_at", "finished_at"]
