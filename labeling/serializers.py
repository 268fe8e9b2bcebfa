"""What the API reads and writes for labeling rows. Serializers check types; the services check
the rest (an order against the task's completions, leases, overlap)."""

from rest_framework import serializers

from labeling.conversations import as_dicts
from labeling.exporting import FORMATS, TIE_MODES
from labeling.models import ComparisonTask, Judge, Project, Ranking


class ProjectQuery(serializers.Serializer):
    """`?project=ID`, required."""

    project = serializers.IntegerField(min_value=1, help_text="The project's id.")


class CompletionOut(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()


class AssignedTaskSerializer(serializers.Serializer):
    """A leased task as a labeler sees it: the completions in the task's display order (A, B, ...)."""

    id = serializers.IntegerField(source="task_id")
    prompt = serializers.CharField(source="task.prompt.text", help_text="The prompt, or a conversation's last message.")
    messages = serializers.SerializerMethodField(help_text="The whole conversation: [{role, content}, ...].")
    completions = CompletionOut(many=True, source="task.display_completions")
    lease_expires = serializers.DateTimeField(source="leased_until")

    def get_messages(self, assignment) -> list[dict[str, str]]:
        return as_dicts(assignment.task.prompt.chat)


class RankingIn(serializers.Serializer):
    order = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), allow_empty=False, min_length=1),
        allow_empty=False,
        min_length=1,  # as allow_empty, but the schema shows it (minItems)
        help_text="Tie groups of completion ids, best first: [[12], [14, 11], [13]].",
    )
    likert = serializers.DictField(
        child=serializers.IntegerField(),
        required=False,
        help_text='Optional overall quality per completion id, 1 to 7: {"12": 6}.',
    )
    rationale = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    flags = serializers.ListField(child=serializers.ChoiceField(choices=Ranking.Flag.choices), required=False)
    time_spent_ms = serializers.IntegerField(required=False, allow_null=True, min_value=0)


class RankingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Ranking
        fields = [
            "id", "task", "labeler", "order", "likert", "rationale", "flags", "time_spent_ms", "ai", "judged_by",
            "suggestion", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = [
            "id", "name", "k", "overlap", "lease_seconds", "eval_ratio", "selection", "control_share", "guidelines",
            "collect_likert", "collect_rationale", "continue_conversations", "max_turns", "suggestions", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ComparisonTaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = ComparisonTask
        fields = [
            "id", "project", "prompt", "policy_version", "kind", "state", "target_overlap", "uncertainty", "chosen_by",
            "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ProjectFilter(serializers.Serializer):
    project = serializers.IntegerField(required=False, min_value=1)


class TaskFilter(ProjectFilter):
    state = serializers.ChoiceField(choices=ComparisonTask.State.choices, required=False)


class RankingFilter(ProjectFilter):
    labeler = serializers.IntegerField(required=False, min_value=1, help_text="The labeler's user id.")
    ai = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="true: only the AI judge's; false: only people's."
    )
    created_after = serializers.DateTimeField(required=False, help_text="Inclusive, ISO 8601.")
    created_before = serializers.DateTimeField(required=False, help_text="Exclusive, ISO 8601.")


class PromptsIn(serializers.Serializer):
    prompts = serializers.ListField(
        child=serializers.JSONField(),
        allow_empty=False,
        help_text='Prompts as strings or objects like JSONL lines: {"prompt": "..."} or a conversation '
        '{"messages": [{"role": "user", "content": "..."}, ...]}, other fields kept as metadata.',
    )
    atomic = serializers.BooleanField(default=False, help_text="Store nothing if any item is invalid.")


class InvalidItemOut(serializers.Serializer):
    item = serializers.IntegerField(source="line", help_text="1 for the first item of `prompts`.")
    reason = serializers.CharField()


class ImportReportOut(serializers.Serializer):
    imported = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="Already in the project or repeated in the request.")
    invalid_count = serializers.IntegerField()
    invalid = InvalidItemOut(many=True, help_text="The first 20 invalid items.")
    rolled_back = serializers.BooleanField(help_text="An atomic import met an invalid item: nothing was stored.")


class ExportQuery(serializers.Serializer):
    # `format` is DRF's renderer override, so the export's shape is `kind`.
    kind = serializers.ChoiceField(choices=FORMATS, default="pairs", help_text=", ".join(FORMATS) + ".")
    ties = serializers.ChoiceField(
        choices=TIE_MODES, default="drop", help_text="Pairs and conversational: drop, or half."
    )
    include_excluded = serializers.BooleanField(default=False)
    include_ai = serializers.BooleanField(default=True, help_text="false leaves out the AI judge's rankings.")


class JudgeSerializer(serializers.ModelSerializer):
    """A project's AI judge. `api_key_env` names the worker's environment variable holding an
    endpoint's key: the key itself is never sent here, stored or shown."""

    identity = serializers.CharField(read_only=True, help_text="Which judge its rankings say made them.")
    prompt_version = serializers.CharField(read_only=True, help_text="A digest of its instructions.")
    account = serializers.CharField(source="account.username", read_only=True, help_text="It ranks as this AI labeler.")

    class Meta:
        model = Judge
        fields = [
            "backend", "model", "base_url", "api_key_env", "judging_prompt", "weight_cap", "max_calls",
            "identity", "prompt_version", "account", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["updated_at"]
