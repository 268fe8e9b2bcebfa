"""Projects, prompts, completions and the human judgements made on them.

A Ranking is the single source of truth for a preference: it stores the full order with
ties; pairs are derived when training or exporting.
"""

import hashlib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce

from labeling.conversations import Chat, as_chat, digest_source


class Project(models.Model):
    """A labeling project: its prompts, how comparisons are handed out and what labelers are asked.

    How its rankings train a model is training's `Recipe`, one per project. Labeling imports
    nothing of training. Its models name one training row by string, the policy version a completion
    was sampled from (`policy_version`), and it reads two facts through relations: whether that
    version was retired (a task's state), and whether a sampling run of the project is live
    (`runs`, on the labeler's home page).
    """

    class Selection(models.TextChoices):
        RANDOM = "random", "Random: tasks in the order they were sampled"
        UNCERTAINTY = "uncertainty", "Uncertainty: the pairs the reward model's ensemble disputes most first"

    name = models.CharField(max_length=120, unique=True)
    k = models.PositiveSmallIntegerField("K", default=4, help_text="Completions per comparison task (2 to 9).")
    guidelines = models.TextField(blank=True, help_text="Markdown shown to labelers beside every task.")
    overlap = models.PositiveSmallIntegerField(default=1, help_text="How many labelers rank each task.")
    eval_ratio = models.FloatField(default=0.0, help_text="Share of handed-out tasks that are eval tasks (0 to 1).")
    gold_rate = models.FloatField(
        default=0.05,
        help_text="Share of handed-out tasks that are gold tasks (0 to 1), while the labeler has gold tasks left.",
    )
    agreement_threshold = models.FloatField(
        default=0.6,
        help_text="Labelers whose agreement with the others (or gold accuracy) falls below this are flagged.",
    )
    lease_seconds = models.PositiveIntegerField(
        default=900, help_text="How long a labeler holds a task before it returns to the pool."
    )
    selection = models.CharField(
        max_length=16,
        choices=Selection.choices,
        default=Selection.RANDOM,
        help_text="Which training tasks labelers get first, and (uncertainty) which K of 2K sampled candidates make "
        "a task. Needs a reward model with at least 2 heads; eval tasks stay in sampled order.",
    )
    control_share = models.FloatField(
        default=0.2,
        help_text="Uncertainty selection only: this share of new training tasks shows K candidates as sampled, not "
        "the most disputed, and is handed out first. The reward model's fresh-label accuracy (which the promotion "
        "gate reads) is measured on these: the most disputed pairs are the hardest to order by design (0 to 1).",
    )

    class Suggestions(models.TextChoices):
        OFF = "off", "Off"
        AFTER_SUBMIT = "after_submit", "After submit: the AI judge's order is shown once the labeler's own is sent"
        PREFILLED = (
            "prefilled",
            "Pre-filled: the ranking starts in the AI judge's order; the labeler changes it at will",
        )

    suggestions = models.CharField(
        max_length=16,
        choices=Suggestions.choices,
        default=Suggestions.AFTER_SUBMIT,
        help_text="Whether labelers see the AI judge's order of a task it ranked. After submit shows agreement "
        "without anchoring; pre-filled saves clicks, records whether the labeler changed the order, and its rankings "
        "are left out of the agreement figures.",
    )
    collect_likert = models.BooleanField(default=False, help_text="Ask for a 1–7 quality score per completion.")
    collect_rationale = models.BooleanField(default=False, help_text="Offer a rationale text box.")
    continue_conversations = models.BooleanField(
        default=False,
        help_text="After ranking, a labeler may write the next user message under the best reply: a new prompt "
        "(the conversation so far, that reply, the new message) that the policy answers K times.",
    )
    max_turns = models.PositiveSmallIntegerField(
        default=8, help_text="The most user turns a continued conversation may reach (its depth in the tree)."
    )
    labelers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="labeling_projects")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(k__gte=2, k__lte=9),
                name="project_k_2_to_9",
                violation_error_message="K must be between 2 and 9.",
            ),
            models.CheckConstraint(
                condition=Q(overlap__gte=1),
                name="project_overlap_positive",
                violation_error_message="Overlap must be at least 1.",
            ),
            models.CheckConstraint(
                condition=Q(eval_ratio__gte=0, eval_ratio__lte=1),
                name="project_eval_ratio_0_1",
                violation_error_message="The eval ratio must be between 0 and 1.",
            ),
            models.CheckConstraint(
                condition=Q(control_share__gte=0, control_share__lte=1),
                name="project_control_share_0_1",
                violation_error_message="The control share must be between 0 and 1.",
            ),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0, gold_rate__lte=1),
                name="project_gold_rate_0_1",
                violation_error_message="The gold rate must be between 0 and 1.",
            ),
            models.CheckConstraint(
                condition=Q(agreement_threshold__gte=0, agreement_threshold__lte=1),
                name="project_agreement_threshold_0_1",
                violation_error_message="The agreement threshold must be between 0 and 1.",
            ),
            models.CheckConstraint(
                condition=Q(lease_seconds__gte=10),
                name="project_lease_at_least_10s",
                violation_error_message="A lease must last at least 10 seconds.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


def text_digest(text: str) -> str:
    """The key prompts are unique by: long texts do not fit a B-tree index entry."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prompt_digest(chat: Chat) -> str:
    """A prompt's key: its text's digest, or for a conversation the digest of all its messages."""
    return text_digest(chat if isinstance(chat, str) else digest_source(chat))


class Prompt(models.Model):
    """What the model is asked: one user message (`text`), or a conversation (`messages`, the OpenAI / TRL
    form, ending with the user's message, which `text` repeats for lists and search)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    text = models.TextField()
    messages = models.JSONField(
        default=list, blank=True, help_text="The whole conversation, for a multi-turn prompt; empty for a single turn."
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
        help_text="The prompt whose ranked reply this conversation continues.",
    )
    text_sha256 = models.CharField(max_length=64, editable=False)
    source = models.CharField(max_length=200, blank=True, help_text="Where it came from: a file name, 'api', 'demo'.")
    metadata = models.JSONField(default=dict, blank=True)
    needs_demonstration = models.BooleanField(default=False, help_text="Ask labelers to write the ideal answer.")
    heldout = models.BooleanField(
        "held out",
        default=False,
        help_text="Kept for evaluation: never sampled into training comparisons nor used by PPO; "
        "blind evaluations of policy versions draw their prompts from these.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "text_sha256"],
                name="prompt_unique_text_per_project",
                violation_error_message="This prompt is already in the project.",
            ),
            models.CheckConstraint(
                condition=~Q(text=""), name="prompt_text_not_empty", violation_error_message="A prompt cannot be empty."
            ),
        ]

    def __str__(self) -> str:
        return self.text[:80]

    def save(self, *args, **kwargs) -> None:
        self.text_sha256 = self.digest
        super().save(*args, **kwargs)

    @property
    def chat(self) -> Chat:
        """What the model is prompted with: the text, or the conversation."""
        return as_chat(self.text, self.messages)

    @property
    def digest(self) -> str:
        return prompt_digest(self.chat)

    def clean(self) -> None:
        # The unique constraint is on a field forms do not show, so check it here for them.
        self.text_sha256 = self.digest
        duplicates = Prompt.objects.filter(project_id=self.project_id, text_sha256=self.text_sha256)
        if self.project_id and duplicates.exclude(pk=self.pk).exists():
            raise ValidationError({"text": "This prompt is already in the project."})


class Completion(models.Model):
    class FinishReason(models.TextChoices):
        EOS = "eos", "End of sequence"
        LENGTH = "length", "Hit max_new_tokens"

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="completions")
    policy_version = models.ForeignKey("training.PolicyVersion", on_delete=models.PROTECT, related_name="completions")
    text = models.TextField()
    token_count = models.PositiveIntegerField()
    finish_reason = models.CharField(max_length=8, choices=FinishReason.choices)
    sampling = models.JSONField(default=dict, blank=True, help_text="The settings it was sampled with, seed included.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["prompt", "policy_version"], name="completion_prompt_policy")]

    def __str__(self) -> str:
        return self.text[:80]


UNCERTAINTY_QUEUE_KEY = Case(
    When(chosen_by="control", then=Value(2.0)), default=Coalesce(F("uncertainty"), Value(-1.0))
)
"""A task's place in an uncertainty queue, highest first: a control task 2, above any score (a
standard deviation of probabilities, in [0, 0.5]); otherwise its uncertainty, -1 while it has none,
so unscored tasks sort last."""


class ComparisonTask(models.Model):
    class Kind(models.TextChoices):
        TRAIN = "train", "Train"
        EVAL = "eval", "Eval"

    class State(models.TextChoices):
        OPEN = "open", "Open"  # needs rankings
        COMPLETE = "complete", "Complete"  # reached its overlap
        RETIRED = "retired", "Retired"  # sampled from a retired policy: no longer handed out
        GOLD = "gold", "Gold"  # has an expected order; every labeler meets it once, at the gold rate

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="tasks")
    policy_version = models.ForeignKey(
        "training.PolicyVersion", on_delete=models.PROTECT, related_name="tasks", help_text="Sampled from."
    )
    completions = models.ManyToManyField(Completion, through="TaskCompletion", related_name="tasks")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.TRAIN)
    target_overlap = models.PositiveSmallIntegerField(default=1)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    gold_order = models.JSONField(
        null=True,
        blank=True,
        help_text="Gold tasks only: the expected order, tie groups of completion ids best first, "
        "like [[12], [14, 11], [13]]. Its rankings measure labelers and never train the reward model.",
    )
    uncertainty = models.FloatField(
        null=True,
        blank=True,
        help_text="How much the reward model's ensemble disagrees on the task's pairs (the heads' std of "
        "P(win), averaged over pairs); set when sampled and refreshed when a new reward model lands.",
    )

    class ChosenBy(models.TextChoices):
        SAMPLING = "sampling", "Sampling: the first K distinct samples"
        ENSEMBLE = "ensemble", "Ensemble: the K of 2K candidates the reward model's ensemble disputes most"
        CONTROL = "control", "Control: K candidates as sampled, under uncertainty selection, handed out first"

    chosen_by = models.CharField(
        max_length=10,
        choices=ChosenBy.choices,
        default=ChosenBy.SAMPLING,
        help_text="How its K completions were chosen. Rankings of tasks the ensemble chose are left out of the "
        "reward model's fresh-label accuracy: it picked them for being hard to order.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(target_overlap__gte=1), name="task_overlap_positive"),
            models.CheckConstraint(
                condition=Q(state="gold", gold_order__isnull=False) | (~Q(state="gold") & Q(gold_order__isnull=True)),
                name="task_gold_order_iff_gold",
                violation_error_message="A gold task needs its expected order, and only a gold task has one.",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "state", "kind", "id"], name="task_queue"),
            # What the assignment query walks, oldest first: open tasks only, however many are done
            # and however the projects' tasks interleave (services._lock_available_task).
            models.Index(
                fields=["project", "kind", "created_at", "id"], condition=Q(state="open"), name="task_open_queue"
            ),
            # The same walk for a project that selects by uncertainty: most disputed first, unscored
            # last (services.queue_order; COALESCE, as SQLite has no NULLS LAST in an index).
            models.Index(
                "project",
                "kind",
                UNCERTAINTY_QUEUE_KEY.desc(),
                "created_at",
                "id",
                condition=Q(state="open"),
                name="task_open_uncertain",
            ),
        ]

    def __str__(self) -> str:
        return f"Task {self.pk} ({self.kind}, {self.state})"

    def display_completions(self) -> list[Completion]:
        """The completions in the task's fixed shuffled order (A, B, C, ...)."""
        return [item.completion for item in self.items.select_related("completion").order_by("position")]


LETTERS = "ABCDEFGHI"


def letter(position: int) -> str:
    """The letter a completion is shown under at a display position (0 = A)."""
    return LETTERS[position]


def order_in_letters(order: list[list[int]], position_of: dict[int, int]) -> str:
    """A stored order of completion ids as labelers see it: [[12], [14, 11], [13]] -> "B > A = D > C"
    (ties joined by "="); an id that is not one of the task's completions shows as "?id"."""
    return " > ".join(
        " = ".join(letter(position_of[cid]) if cid in position_of else f"?{cid}" for cid in group) for group in order
    )


class TaskCompletion(models.Model):
    """Places a completion at a fixed display position (0 = A) within a task."""

    task = models.ForeignKey(ComparisonTask, on_delete=models.CASCADE, related_name="items")
    completion = models.ForeignKey(Completion, on_delete=models.PROTECT, related_name="task_items")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["task", "position"]
        constraints = [
            models.UniqueConstraint(fields=["task", "position"], name="task_position_unique"),
            models.UniqueConstraint(fields=["task", "completion"], name="task_completion_unique"),
            models.CheckConstraint(condition=Q(position__lte=8), name="task_position_below_9"),
        ]

    def __str__(self) -> str:
        return f"Task {self.task_id}: {letter(self.position)} = completion {self.completion_id}"


class Assignment(models.Model):
    """A labeler's lease on a task; a labeler is never given the same task twice."""

    class State(models.TextChoices):
        LEASED = "leased", "Leased"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"
        EXPIRED = "expired", "Expired"

    task = models.ForeignKey(ComparisonTask, on_delete=models.CASCADE, related_name="assignments")
    labeler = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    leased_until = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.LEASED)
    skip_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["task", "labeler"], name="assignment_once_per_labeler")]
        indexes = [
            models.Index(fields=["task", "state", "leased_until"], name="assignment_live_leases"),
            models.Index(fields=["labeler", "state"], name="assignment_labeler_state"),
        ]

    def __str__(self) -> str:
        return f"{self.labeler} on task {self.task_id} ({self.state})"


class Ranking(models.Model):
    """A labeler's full order of a task's completions, best first; each entry is a tie group.

    `order` holds completion ids: [[12], [14, 11], [13]] means 12 best, 14 and 11 tied, 13 worst.
    """

    class Flag(models.TextChoices):
        UNSAFE = "unsafe", "Unsafe"
        NONSENSE = "nonsense", "Nonsense"
        ALL_BAD = "all_bad", "All bad"

    task = models.ForeignKey(ComparisonTask, on_delete=models.CASCADE, related_name="rankings")
    labeler = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="rankings")
    order = models.JSONField()
    likert = models.JSONField(default=dict, blank=True, help_text="Completion id → overall quality 1–7.")
    rationale = models.TextField(blank=True)
    flags = models.JSONField(default=list, blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    excluded = models.BooleanField(default=False, help_text="Left out of training (marked unusable by staff).")
    ai = models.BooleanField(
        "AI", default=False, help_text="Made by the project's AI judge, not a person: never counted as a human ranking."
    )
    judged_by = models.JSONField(
        default=dict, blank=True, help_text="AI rankings: the judge (backend and model), its prompt version, the run."
    )
    suggestion = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the labeler started from: {'shown': 'prefilled', 'order': the judge's, 'changed': bool}; "
        "empty when nothing was pre-filled.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["task", "labeler"], name="ranking_once_per_labeler")]
        indexes = [models.Index(fields=["labeler", "created_at"], name="ranking_labeler_time")]

    def __str__(self) -> str:
        return f"Ranking {self.pk} of task {self.task_id} by {self.labeler}"


class Demonstration(models.Model):
    """A labeler-written ideal answer to a prompt: supervised fine-tuning data."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="demonstrations")
    labeler = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="demonstrations")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "labeler"],
                name="demonstration_once_per_labeler",
                violation_error_message="This labeler already wrote a demonstration for this prompt.",
            ),
            models.CheckConstraint(
                condition=~Q(text=""),
                name="demonstration_text_not_empty",
                violation_error_message="A demonstration cannot be empty.",
            ),
        ]

    def __str__(self) -> str:
        return f"Demonstration by {self.labeler} for prompt {self.prompt_id}"


DEFAULT_JUDGING_PROMPT = """You compare two answers to the same request and say which one is better.
Judge by the guidelines below when there are any; otherwise by which answer a careful reader would prefer.
Neither answer's position nor its length is a reason to prefer it.
Reply with the single letter of the better answer: A or B."""

ENV_NAME = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_]*$",
    "Give the name of an environment variable (like OPENAI_API_KEY), never the key itself.",
)


class Judge(models.Model):
    """A project's AI judge: a model that ranks tasks as one more labeler, through its own account.

    Its rankings are marked `ai` and weigh in the reward model's loss only as far as they agree with
    people (`labeling.quality`), capped by `weight_cap`. An endpoint's key stays in the worker's
    environment: only the variable's name is stored.
    """

    class Backend(models.TextChoices):
        LOCAL = "local", "A local model, run on the generation worker"
        ENDPOINT = "endpoint", "An OpenAI-compatible chat-completions endpoint (vLLM, TGI, Ollama, a provider)"

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="judge")
    backend = models.CharField(max_length=10, choices=Backend.choices, default=Backend.LOCAL)
    model = models.CharField(
        max_length=300,
        default="bundled",
        help_text="Local: 'bundled' (the project's base model), a Hugging Face id or a path the worker can read. "
        "Endpoint: the model name it serves.",
    )
    base_url = models.URLField(
        "base URL", max_length=500, blank=True, help_text="Endpoint only: like http://127.0.0.1:8000/v1."
    )
    api_key_env = models.CharField(
        "API key variable",
        max_length=100,
        blank=True,
        validators=[ENV_NAME],
        help_text="Endpoint only: the name of the worker's environment variable that holds the key (blank for "
        "none). The key itself is never stored or shown.",
    )
    judging_prompt = models.TextField(
        default=DEFAULT_JUDGING_PROMPT, help_text="The judge's instructions; the project's guidelines follow them."
    )
    weight_cap = models.FloatField(
        default=0.5,
        help_text="The most its rankings may weigh in the reward model's loss (a careful person's weigh about 1); "
        "below that, the weight it earns by agreeing with people.",
    )
    max_calls = models.PositiveIntegerField(
        default=2000, help_text="Endpoint only: a judging run stops (and fails) after this many calls."
    )
    account = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judge_of", editable=False
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(weight_cap__gte=0, weight_cap__lte=1),
                name="judge_weight_cap_0_1",
                violation_error_message="The weight cap must be between 0 and 1.",
            ),
            models.CheckConstraint(
                condition=Q(backend="local") | ~Q(base_url=""),
                name="judge_endpoint_has_url",
                violation_error_message="An endpoint judge needs its base URL.",
            ),
        ]

    def __str__(self) -> str:
        return f"AI judge of {self.project} ({self.identity})"

    def save(self, *args, **kwargs) -> None:
        if self.account_id is None:  # an account of its own, never a person's that has the name
            users, name, n = get_user_model().objects, f"ai-judge-{self.project_id}", 1
            while users.filter(username=name).exists():
                n += 1
                name = f"ai-judge-{self.project_id}-{n}"
            user = users.create(username=name)
            user.set_unusable_password()
            user.save(update_fields=["password"])
            self.account = user
        super().save(*args, **kwargs)

    @property
    def identity(self) -> str:
        """Which judge: 'local:bundled', 'endpoint:qwen2.5-7b@127.0.0.1:8000'."""
        if self.backend == self.Backend.ENDPOINT:
            host = self.base_url.split("://", 1)[-1].split("/", 1)[0]
            return f"endpoint:{self.model}@{host}"
        return f"local:{self.model}"

    @property
    def instructions(self) -> str:
        """What the judge is told: the judging prompt, then the project's guidelines."""
        guidelines = self.project.guidelines.strip()
        return self.judging_prompt.strip() + (f"\n\nGuidelines:\n{guidelines}" if guidelines else "")

    @property
    def prompt_version(self) -> str:
        """A short digest of the instructions: rankings say which version of them they were made with."""
        return text_digest(self.instructions)[:12]
