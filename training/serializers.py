"""What the API reads and writes for model versions and training runs."""

import inspect

from rest_framework import serializers

from labeling.models import ComparisonTask, Project
from labeling.serializers import ProjectSerializer
from training.models import PolicyVersion, Recipe, RewardModelVersion, TrainingRun
from training.services import KINDS


class RecipeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Recipe
        fields = [
            "base_model", "temperature", "top_p", "top_k", "max_new_tokens", "algorithm", "dpo_trains_reward_model",
            "retrain_threshold", "sft_threshold", "promotion", "promotion_gate", "gate_max_disagreement_ratio",
            "gate_max_length_change", "gate_max_eos_change", "gate_blind_pairs",
        ]  # fmt: skip
        read_only_fields = fields


class ProjectWithRecipeSerializer(ProjectSerializer):
    """A project as staff read it: labeling's settings, and its training recipe under `recipe`."""

    recipe = RecipeSerializer(read_only=True)

    class Meta(ProjectSerializer.Meta):
        fields = [*ProjectSerializer.Meta.fields, "recipe"]
        read_only_fields = fields


class PolicyVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = PolicyVersion
        fields = [
            "id",
            "project",
            "version",
            "parent",
            "status",
            "checkpoint",
            "reward_model",
            "created_by_run",
            "created_at",
            "promoted_at",
            "probe",
            "gate",
        ]
        read_only_fields = fields


class RewardModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = RewardModelVersion
        fields = [
            "id",
            "project",
            "version",
            "parent",
            "checkpoint",
            "accuracy",
            "heldout_accuracy",
            "tie_rate",
            "rankings_count",
            "trained_through_ranking_id",
            "normalisation",
            "created_by_run",
            "created_at",
        ]
        read_only_fields = fields


RUN_FIELDS = [
    "id",
    "project",
    "kind",
    "status",
    "progress",
    "parent",
    "config",
    "policy",
    "baseline",
    "reward_model",
    "through_ranking",
    "prompts",
    "k",
    "task_kind",
    "preference",
    "error",
    "launched_by",
    "created_at",
    "started_at",
    "heartbeat_at",
    "finished_at",
]


class TrainingRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainingRun
        fields = RUN_FIELDS
        read_only_fields = fields


class TrainingRunDetailSerializer(serializers.ModelSerializer):
    """A run with its metrics (one dict per logged step) and the tail of its log."""

    class Meta:
        model = TrainingRun
        fields = [*RUN_FIELDS, "metrics", "log_tail", "hardware"]
        read_only_fields = fields


# The kinds POST /api/runs/ launches; settings name this list so the schema calls its enum LaunchKindEnum.
LAUNCH_KINDS = [(kind, TrainingRun.Kind(kind).label) for kind in KINDS]


class LaunchRun(serializers.Serializer):
    """A run to launch: its project and kind, and the inputs that kind's check takes (others are
    dropped, so each kind receives only its own)."""

    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.all())
    kind = serializers.ChoiceField(choices=LAUNCH_KINDS)
    prompts = serializers.IntegerField(
        min_value=1, max_value=100_000, default=50, help_text="generate, blind_eval: how many prompts at most."
    )
    task_kind = serializers.ChoiceField(
        choices=ComparisonTask.Kind.choices, default=ComparisonTask.Kind.TRAIN, help_text="generate: train or eval."
    )
    steps = serializers.IntegerField(
        min_value=1, required=False, help_text="ppo, rloo: RL steps (default: the project's setting)."
    )
    tasks = serializers.IntegerField(
        min_value=1, max_value=100_000, default=50, help_text="judge: how many tasks the AI judge ranks at most."
    )

    def validate(self, data: dict) -> dict:
        takes = inspect.signature(KINDS[data["kind"]].check).parameters
        return {name: value for name, value in data.items() if name in ("project", "kind") or name in takes}
