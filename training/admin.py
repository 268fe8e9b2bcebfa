from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from training.models import PolicyVersion, RewardModelVersion, TrainingRun
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
    list_display = ["id", "project", "kind", "status", "progress", "created_at", "finished_at"]
    list_filter = ["project", "kind", "status"]
    search_fields = ["project__name", "celery_task_id", "error"]
    list_select_related = ["project"]
    raw_id_fields = ["launched_by"]
    readonly_fields = ["metrics", "log_tail", "error", "celery_task_id", "started_at", "heartbeat_at", "finished_at"]
