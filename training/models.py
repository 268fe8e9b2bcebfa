"""Model versions (policies, reward models) and the training runs that make them.

A version row exists only once its checkpoint files are complete in the model store;
`checkpoint` is a path relative to settings.MODEL_STORE, or for a project's base policy
the base model reference itself (alias, hub id or local folder).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from labeling.models import Project


class Recipe(models.Model):
    """How a project's rankings train its policy: the base model, how comparisons are sampled, the
    algorithm and its settings, when a round starts and how its policy is promoted. One per project,
    made with it (training.services.do_create_project); the configs are overrides of the training
    core's dataclasses (training.configs)."""

    class Algorithm(models.TextChoices):
        RLOO = "rloo", "RLOO: reward model, then RL with k samples per prompt and no critic"
        PPO = "ppo", "PPO: reward model, then RL with a critic (InstructGPT)"
        DPO = "dpo", "DPO: the policy straight from the rankings (a reward model still trains, for selection)"

    class Promotion(models.TextChoices):
        AUTOMATIC = "automatic", "Automatic"
        MANUAL = "manual", "Manual"

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="recipe")
    base_model = models.CharField(
        max_length=500,
        default="smollm2-135m-instruct",
        help_text="A Hugging Face model id, a local folder, or the bundled alias smollm2-135m-instruct.",
    )
    temperature = models.FloatField(default=0.7)
    top_p = models.FloatField(default=1.0)
    top_k = models.PositiveIntegerField(default=0, help_text="0 turns top-k filtering off.")
    max_new_tokens = models.PositiveIntegerField(default=128)
    algorithm = models.CharField(
        max_length=8,
        choices=Algorithm.choices,
        default=Algorithm.RLOO,
        help_text="What a round trains the policy with, after an SFT step when enough new demonstrations arrived.",
    )
    dpo_trains_reward_model = models.BooleanField(
        "DPO rounds train a reward model",
        default=True,
        help_text="A DPO round still trains a reward model, which fresh-label accuracy, best-of-n and uncertainty "
        "selection read; off, the round is DPO alone and those figures stay at the last reward model.",
    )
    retrain_threshold = models.PositiveIntegerField(
        default=200, help_text="New rankings since the last reward model that start a new round."
    )
    sft_threshold = models.PositiveIntegerField(
        "SFT threshold",
        default=20,
        help_text="New demonstrations since the last SFT run that make a round start with SFT; 0 never does.",
    )
    promotion = models.CharField(
        max_length=16,
        choices=Promotion.choices,
        default=Promotion.AUTOMATIC,
        help_text="Automatic: a successful policy run's (SFT, PPO, RLOO, DPO) policy becomes active. Manual: an admin "
        "promotes it.",
    )
    promotion_gate = models.BooleanField(
        default=True,
        help_text="Automatic promotion only when the new policy passes the gate's checks (the reward model beats "
        "chance on fresh rankings, the ensemble knows the policy's answers, length and EOS rate stay in bounds); "
        "otherwise it stays a candidate, with the checks that failed on its page.",
    )
    gate_max_disagreement_ratio = models.FloatField(
        default=2.0,
        help_text="The reward model's ensemble may disagree on the new policy's own answers at most this many times "
        "as much as on the comparisons it was trained on.",
    )
    gate_max_length_change = models.FloatField(
        default=0.5,
        help_text="The new policy's mean answer length may differ from its parent's, and from its KL reference's (the "
        "base or the last SFT version), by at most this share (0.5: half as long to one and a half times as long).",
    )
    gate_max_eos_change = models.FloatField(
        "gate max EOS-rate change",
        default=0.5,
        help_text="The share of the new policy's answers that end with EOS (not cut at max_new_tokens) may move by "
        "at most this much from its parent's, and from its KL reference's (the base or the last SFT version).",
    )
    gate_blind_pairs = models.PositiveIntegerField(
        default=0,
        help_text="Also wait for a blind evaluation of the new policy against the active one of at least this many "
        "pairs, whose win-rate interval lies above 50%; 0 does not wait for one.",
    )
    reward_model_config = models.JSONField(
        default=dict,
        blank=True,
        help_text='Overrides of the reward-model training defaults, e.g. {"lr": 5e-6, "epochs": 1}.',
    )
    ppo_config = models.JSONField(
        "RL config",
        default=dict,
        blank=True,
        help_text='Overrides of the RL step (PPO and RLOO) defaults, e.g. {"steps": 40, "kl_coef": 0.03}.',
    )
    dpo_config = models.JSONField(
        "DPO config", default=dict, blank=True, help_text='Overrides of the DPO defaults, e.g. {"beta": 0.2}.'
    )
    sft_config = models.JSONField(
        "SFT config",
        default=dict,
        blank=True,
        help_text='Overrides of the SFT defaults, e.g. {"epochs": 2, "include_top_ranked": true}.',
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(temperature__gt=0),
                name="recipe_temperature_positive",
                violation_error_message="Temperature must be above 0.",
            ),
            models.CheckConstraint(
                condition=Q(top_p__gt=0, top_p__lte=1),
                name="recipe_top_p_in_0_1",
                violation_error_message="top_p must be above 0 and at most 1.",
            ),
            models.CheckConstraint(
                condition=Q(max_new_tokens__gte=1),
                name="recipe_max_new_tokens_positive",
                violation_error_message="max_new_tokens must be at least 1.",
            ),
            models.CheckConstraint(
                condition=Q(retrain_threshold__gte=1),
                name="recipe_retrain_threshold_positive",
                violation_error_message="The retrain threshold must be at least 1.",
            ),
            models.CheckConstraint(
                condition=Q(
                    gate_max_disagreement_ratio__gt=0,
                    gate_max_length_change__gte=0,
                    gate_max_eos_change__gte=0,
                    gate_max_eos_change__lte=1,
                ),  # fmt: skip
                name="recipe_gate_bounds",
                violation_error_message="The gate's ratio must be above 0, its length change at least 0, and its EOS "
                "change between 0 and 1.",
            ),
        ]

    def __str__(self) -> str:
        return f"Training recipe of {self.project}"


def _input(model: str, help_text: str) -> models.ForeignKey:
    """A row a run works on: optional (kinds differ in their inputs), and kept while a run names it
    unless the whole project goes."""
    return models.ForeignKey(
        model, null=True, blank=True, on_delete=models.RESTRICT, related_name="+", help_text=help_text
    )


class TrainingRun(models.Model):
    class Kind(models.TextChoices):
        GENERATE = "generate", "Sample comparisons"
        RM = "rm", "Reward model"
        PPO = "ppo", "PPO round"
        RLOO = "rloo", "RLOO round"
        DPO = "dpo", "DPO"
        SFT = "sft", "Supervised fine-tuning"
        EVAL = "eval", "Evaluation"
        BLIND_EVAL = "blind_eval", "Blind human evaluation"
        ROUND = "round", "Full round"
        JUDGE = "judge", "AI judge"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="steps",
        help_text="The round this run is a step of.",
    )  # fmt: skip
    config = models.JSONField(
        default=dict, blank=True, help_text="The algorithm's config dataclass as JSON (training.core.config)."
    )
    # The run's inputs: what it works on, fixed when it is launched.
    policy = _input("PolicyVersion", "The policy it samples, trains from, or evaluates (b of a comparison).")
    baseline = _input("PolicyVersion", "Evaluations: the version the policy is compared with (a).")
    reward_model = _input("RewardModelVersion", "RL steps: the reward model it trains against.")
    through_ranking = _input("labeling.Ranking", "Reward models: trained on the usable rankings up to this one.")
    prompts = models.PositiveIntegerField(
        null=True, blank=True, help_text="Sampling, evaluations: prompts; the AI judge: tasks. At most this many."
    )
    k = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Sampling: completions per prompt.")
    task_kind = models.CharField(max_length=10, blank=True, help_text="Sampling: the kind of task made (train, eval).")
    preference = models.CharField(
        max_length=200, blank=True, help_text="Evaluations by a function: the module:callable that judged."
    )
    metrics = models.JSONField(default=list, blank=True, help_text="One dict per logged step: step, loss, ...")
    progress = models.FloatField(default=0.0, help_text="0 to 1.")
    error = models.TextField(blank=True)
    log_tail = models.TextField(blank=True)
    child_pid = models.PositiveIntegerField(null=True, blank=True, help_text="The training process, while it runs.")
    hardware = models.JSONField(
        default=dict, blank=True, help_text="Device, dtype, accelerator name and peak memory (MiB) it ran with."
    )
    launched_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(progress__gte=0, progress__lte=1), name="run_progress_0_1"),
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(kind="round", status__in=["queued", "running"]),
                name="one_live_round_per_project",
                violation_error_message="A round of this project is already queued or running.",
            ),
        ]
        indexes = [models.Index(fields=["project", "status", "kind"], name="run_project_status")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("training:run", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class RewardModelVersion(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reward_models")
    version = models.PositiveIntegerField()
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
        help_text="Warm-started from.",
    )
    checkpoint = models.CharField(max_length=500)
    created_by_run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL)
    accuracy = models.FloatField(null=True, blank=True, help_text="On its training rankings (strict).")
    heldout_accuracy = models.FloatField(null=True, blank=True, help_text="On rankings it never trained on (strict).")
    tie_rate = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="Everything else: loss, per-labeler accuracy, ...")
    trained_through_ranking_id = models.BigIntegerField(help_text="It trained on rankings up to this id.")
    trained_through_time = models.DateTimeField()
    rankings_count = models.PositiveIntegerField()
    normalisation = models.JSONField(default=dict, blank=True, help_text="Bias (and scale) applied to every score.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="rm_version_unique"),
            models.CheckConstraint(
                condition=Q(heldout_accuracy__isnull=True) | Q(heldout_accuracy__gte=0, heldout_accuracy__lte=1),
                name="rm_heldout_accuracy_0_1",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} RM v{self.version}"


class PolicyVersion(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CANDIDATE = "candidate", "Candidate"
        RETIRED = "retired", "Retired"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="policies")
    version = models.PositiveIntegerField(help_text="0 is the project's base model.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    checkpoint = models.CharField(max_length=500)
    created_by_run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL)
    reward_model = models.ForeignKey(
        RewardModelVersion, null=True, blank=True, on_delete=models.PROTECT, help_text="The RM it was trained against."
    )
    kl_reference = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The policy KL is measured to when this one trains further: its last SFT ancestor, itself if it "
        "came from SFT; none means the base (v0).",
    )  # fmt: skip
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CANDIDATE)
    probe = models.JSONField(
        default=dict,
        blank=True,
        help_text="Its own answers to a few training prompts, sampled when it was made: mean length, EOS rate, and "
        "the reward model's ensemble disagreement on them (training.executors.policies.probe_policy).",
    )
    gate = models.JSONField(
        default=list,
        blank=True,
        help_text="The promotion gate's checks when it was last weighed: name, passed, and why in words.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="policy_version_unique"),
            models.UniqueConstraint(
                fields=["project"], condition=Q(status="active"), name="policy_one_active_per_project"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} policy v{self.version}"


class RankingScore(models.Model):
    """A reward-model version's scores of a ranking it never trained on (a fresh label), and how
    many of the ranking's ordered pairs it orders the same way. Each ranking newer than an RM's
    training data is scored by that RM before the next RM trains on it."""

    ranking = models.ForeignKey("labeling.Ranking", on_delete=models.CASCADE, related_name="rm_scores")
    reward_model = models.ForeignKey(RewardModelVersion, on_delete=models.CASCADE, related_name="ranking_scores")
    scores = models.JSONField(help_text="The normalised score of each completion, in the task's display order.")
    pairs = models.PositiveIntegerField(help_text="Pairs the labeler ordered (ties left out) that the RM ordered too.")
    agreed = models.PositiveIntegerField(help_text="Of those, the pairs the RM orders the labeler's way.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["ranking", "reward_model"], name="ranking_score_once_per_rm"),
            models.CheckConstraint(condition=Q(agreed__lte=models.F("pairs")), name="ranking_score_agreed_le_pairs"),
        ]

    def __str__(self) -> str:
        return f"Ranking {self.ranking_id} by RM {self.reward_model_id}: {self.agreed}/{self.pairs}"


class EvalPair(models.Model):
    """Which two policy versions a blind-evaluation task compares: one completion from each, shown
    in random order (each completion records its own policy version)."""

    task = models.OneToOneField("labeling.ComparisonTask", on_delete=models.CASCADE, related_name="eval_pair")
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="eval_pairs")
    version_a = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="+")
    version_b = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=~Q(version_a=models.F("version_b")), name="eval_pair_two_versions")
        ]

    def __str__(self) -> str:
        return f"Task {self.task_id}: policy {self.version_a_id} vs {self.version_b_id}"
