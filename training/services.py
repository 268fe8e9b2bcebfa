"""Training's web-side workflows: creating projects with their recipe, launching runs, and the
versions they make.

Everything here runs in the web process (admin, API, commands, beat), so nothing imports torch.
The worker side carries runs out (training.executors.carry_out).

- One refusal exception, LaunchRefused: every caller shows its message as it is; the API answers
  its `http_status` (409, or 503 for BrokerUnavailable).
- One table of run kinds (KINDS): what a kind checks before it starts, which Celery task carries it
  out (the task's queue is in settings.CELERY_TASK_ROUTES), its admin action and its charts.
  `create_run` checks and stores a run; `launch` also sends its task. A new kind of run touches
  three places: its choice in TrainingRun.Kind, its check and KINDS row here, and its executor (a
  module in training/executors/ and its line in `carry_out`).
- The versions: a project is created with its base model as policy v0; promotion retires the
  previous active policy and its open tasks.
"""

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from labeling.models import ComparisonTask, Judge, Project, Prompt
from labeling.services import tasks_for_judge
from training.configs import (
    check_recipe,
    dpo_config,
    reward_model_config,
    rl_config,
    sampling_config,
    sft_config,
)
from training.core.config import JudgeConfig
from training.datasets import (
    demonstrations,
    heldout_prompts_for,
    new_rankings_since_last_reward_model,
    training_rankings,
)
from training.models import PolicyVersion, Recipe, RewardModelVersion, TrainingRun
from webapp.celery import app

logger = logging.getLogger(__name__)


class LaunchRefused(Exception):
    """The project cannot start this run now; the message says why and what to do."""

    http_status = 409


class RoundInProgress(LaunchRefused):
    """A round of the project is already queued or running (a unique index enforces it)."""


class BrokerUnavailable(LaunchRefused):
    """The task queue could not be reached; the run was marked failed."""

    http_status = 503


def do_create_project(project: Project, recipe: Recipe | None = None) -> Project:
    """Validates and saves a new project with its recipe (the defaults when None) and its base model
    registered as the active version-0 policy, in one transaction: a project never exists without a
    recipe and a policy to sample from."""
    recipe = recipe or Recipe()
    recipe.project = project
    project.full_clean(exclude=["labelers"])
    check_recipe(recipe)
    recipe.full_clean(exclude=["project"])
    with transaction.atomic():
        project.save()
        recipe.project = project  # now with its primary key
        recipe.save()
        do_register_base_policy(project)
    return project


def do_register_base_policy(project: Project) -> PolicyVersion:
    """Makes the project's base model its version-0 policy, active; returns the existing one if any."""
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        existing = PolicyVersion.objects.filter(project=project, version=0).first()
        if existing is not None:
            return existing
        return PolicyVersion.objects.create(
            project=project,
            version=0,
            checkpoint=project.recipe.base_model,
            status=PolicyVersion.Status.ACTIVE,
            promoted_at=timezone.now(),
        )


def active_policy(project: Project) -> PolicyVersion:
    policy = PolicyVersion.objects.filter(project=project, status=PolicyVersion.Status.ACTIVE).first()
    if policy is None:
        raise LaunchRefused(f"Project {project.name!r} has no active policy to sample from.")
    return policy


def latest_reward_model(project: Project | int) -> RewardModelVersion | None:
    return RewardModelVersion.objects.filter(project=project).order_by("-version").first()


def default_pair(project: Project) -> tuple[PolicyVersion, PolicyVersion]:
    """(a, b): the newest policy that is not retired (a candidate the gate kept back, else the active
    policy) against its parent, or the base. Only the base: (v0, v0), which a launch refuses."""
    live = PolicyVersion.objects.filter(project=project).exclude(status=PolicyVersion.Status.RETIRED)
    b = live.order_by("-version").first() or active_policy(project)
    a = b.parent or PolicyVersion.objects.get(project=project, version=0)
    return a, b


def do_promote_policy(policy: PolicyVersion) -> PolicyVersion:
    """Makes `policy` its project's active policy: the previous one is retired, and its open
    comparison tasks stop being handed out (their rankings stay and keep training the RM).
    Blind-evaluation tasks stay open: they compare versions, whichever is active."""
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=policy.project_id)
        previous = PolicyVersion.objects.filter(project_id=policy.project_id, status=PolicyVersion.Status.ACTIVE)
        previous = previous.exclude(pk=policy.pk)
        ComparisonTask.objects.filter(
            policy_version__in=previous, state=ComparisonTask.State.OPEN, eval_pair__isnull=True
        ).update(state=ComparisonTask.State.RETIRED)
        previous.update(status=PolicyVersion.Status.RETIRED)
        policy.status = PolicyVersion.Status.ACTIVE
        policy.promoted_at = timezone.now()
        policy.save(update_fields=["status", "promoted_at"])
    return policy


# --- launching runs ------------------------------------------------------------------------------

Kind = TrainingRun.Kind
MAX_BLIND_EVAL_PROMPTS = 500


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    keys: tuple[str, ...]
    """The metric keys it draws, one line each."""


@dataclass(frozen=True)
class RunKind:
    check: Callable[..., dict]
    """(project, **inputs) -> the new run's fields; raises LaunchRefused. A `config` field is the
    algorithm's config dataclass, or a function of the run's id for a config seeded by it."""
    task: str
    """The Celery task that carries it out (training.tasks): execute_run (in the worker's process, on
    the generation queue), run_in_child (in a supervised child process, whose exit frees GPU memory,
    on the training queue) or run_round (a round, whose training steps each run in a child)."""
    action: tuple[str, str] | None = None
    """(name, label) of the admin action that launches it on the selected projects, with the check's
    default inputs; None for kinds launched otherwise."""
    charts: tuple[Chart, ...] = field(default=())
    """What its live page charts."""
    processes: bool = False
    """Whether it trains on the worker's TRAINING_PROCESSES processes (one a GPU), rank 0 writing."""


def check_sampling(
    project: Project, prompts: int = 50, task_kind: str = ComparisonTask.Kind.TRAIN, policy: PolicyVersion | None = None
) -> dict:
    """K completions for up to `prompts` prompts of `policy` (default: the active one) that it has not
    sampled yet."""
    if prompts < 1:
        raise LaunchRefused(f"Ask for at least 1 prompt, not {prompts}.")
    return {
        "policy": policy or active_policy(project),
        "prompts": prompts,
        "task_kind": task_kind,
        "k": project.k,
        "config": partial(sampling_config, project.recipe),
    }


def check_reward_model(project: Project) -> dict:
    """A reward model on every usable ranking so far, warm-started from the latest one."""
    through = training_rankings(project).order_by("-id").first()
    if through is None:
        raise LaunchRefused(f"Project {project.name!r} has no rankings to train a reward model on.")
    return {"policy": active_policy(project), "through_ranking": through, "config": reward_model_config(project.recipe)}


def check_rl(project: Project, algorithm: str, steps: int | None = None, policy: PolicyVersion | None = None) -> dict:
    """An RL step ('ppo' or 'rloo') on `policy` (default: the active one) against the latest reward
    model; `steps` overrides the project's."""
    reward_model = latest_reward_model(project)
    if reward_model is None:
        raise LaunchRefused(f"Project {project.name!r} has no reward model yet: train one first.")
    if steps is not None and steps < 1:
        raise LaunchRefused(f"An RL step needs at least 1 step, not {steps}.")
    config = rl_config(project.recipe, algorithm, **({"steps": steps} if steps else {}))
    return {"policy": policy or active_policy(project), "reward_model": reward_model, "config": config}


def check_dpo(project: Project, policy: PolicyVersion | None = None) -> dict:
    """DPO of `policy` (default: the active one) on every usable ranking so far."""
    through = training_rankings(project).order_by("-id").first()
    if through is None:
        raise LaunchRefused(f"Project {project.name!r} has no rankings to train on with DPO.")
    return {
        "policy": policy or active_policy(project),
        "through_ranking": through,
        "config": dpo_config(project.recipe),
    }


def check_sft(project: Project) -> dict:
    """SFT of the active policy on the project's demonstrations (and top-ranked completions, if set)."""
    config = sft_config(project.recipe)
    if not demonstrations(project).exists() and not (config.include_top_ranked and training_rankings(project).exists()):
        raise LaunchRefused(
            f"Project {project.name!r} has no demonstrations to fine-tune on: ask for ideal answers in the admin "
            "(Prompts, action 'Ask labelers for ideal answers'), or set \"include_top_ranked\" in the SFT config."
        )
    return {"policy": active_policy(project), "config": config}


def check_round(project: Project) -> dict:
    """[SFT →] RM → the project's algorithm → promotion (per the project's rule) → new comparisons;
    one live round at a time."""
    if not training_rankings(project).exists():
        raise LaunchRefused(f"Project {project.name!r} has no rankings to train a reward model on.")
    _refuse_a_second_round(project)
    return {}


def check_blind_evaluation(
    project: Project, prompts: int = 50, a: PolicyVersion | None = None, b: PolicyVersion | None = None
) -> dict:
    """Versions b over a (default: the newest policy that is not retired over its parent, or the base) on up to
    `prompts` held-out prompts they were not compared on."""
    if not 1 <= prompts <= MAX_BLIND_EVAL_PROMPTS:
        raise LaunchRefused(f"Ask for 1 to {MAX_BLIND_EVAL_PROMPTS} prompts, not {prompts}.")
    if a is None or b is None:
        default_a, default_b = default_pair(project)
        a, b = a or default_a, b or default_b
    if {a.project_id, b.project_id} != {project.pk}:
        raise LaunchRefused(f"Both versions must belong to project {project.name!r}.")
    if a.pk == b.pk:
        raise LaunchRefused(f"Both sides are policy v{a.version}: choose two different versions.")
    if not heldout_prompts_for(a, b).exists():
        raise LaunchRefused(
            f"Project {project.name!r} has no held-out prompts left on which v{b.version} and v{a.version} have "
            "not been compared: hold prompts out in the admin (Prompts, action 'Hold out for evaluation') or "
            "with `manage.py blind_evaluation --hold-out FILE`."
        )
    return {"policy": b, "baseline": a, "prompts": prompts, "config": partial(sampling_config, project.recipe)}


def check_judging(project: Project, tasks: int = 50) -> dict:
    """The project's AI judge ranks up to `tasks` training and gold tasks it has not ranked yet (gold
    first, then open ones). The run keeps the judge's settings as they are now: the model, the
    instructions and their version (an endpoint's key stays a variable's name)."""
    judge = Judge.objects.filter(project=project).first()
    if judge is None:
        raise LaunchRefused(
            f"Project {project.name!r} has no AI judge: set one in the admin (the project's page, 'AI judge'), "
            "with `manage.py set_judge`, or with PUT /api/projects/<id>/judge/."
        )
    if tasks < 1:
        raise LaunchRefused(f"Ask for at least 1 task, not {tasks}.")
    if not tasks_for_judge(project, judge).exists():
        raise LaunchRefused(f"The AI judge of {project.name!r} has ranked every task there is; sample more first.")
    bundled = judge.backend == Judge.Backend.LOCAL and judge.model == "bundled"
    config = JudgeConfig(
        judge=judge.identity,
        backend=judge.backend,
        model=project.recipe.base_model if bundled else judge.model,
        instructions=judge.instructions,
        prompt_version=judge.prompt_version,
        base_url=judge.base_url,
        api_key_env=judge.api_key_env,
        max_calls=judge.max_calls,
    )
    return {"prompts": tasks, "k": project.k, "config": config}


RM_CHARTS = (
    Chart("Reward-model loss, and held-out loss by epoch", "loss", ("loss", "heldout_loss")),
    Chart("Accuracy on the batch, and tie rate", "fraction", ("accuracy", "tie_rate")),
)
PPO_CHARTS = (
    Chart("Reward-model score", "score", ("score",)),
    Chart("Critic: value loss and explained variance", "loss / fraction", ("value_loss", "explained_variance")),
    Chart("KL to the reference, and β", "nats / β", ("kl", "beta")),
    Chart("Clip fraction and approx. KL", "fraction", ("clipfrac", "approx_kl")),
    Chart("Completion length", "tokens", ("mean_length",)),
    Chart("Share of completions ending with EOS", "fraction", ("eos_rate",)),
)
RLOO_CHARTS = (
    Chart("Reward-model score, and its spread within a prompt's samples", "score", ("score", "score_spread")),
    Chart("KL to the reference, and β", "nats / β", ("kl", "beta")),
    Chart("Completion length", "tokens", ("mean_length",)),
    Chart("Share of completions ending with EOS", "fraction", ("eos_rate",)),
)
DPO_CHARTS = (
    Chart("DPO loss", "loss", ("loss", "heldout_loss")),
    Chart("Implicit reward accuracy: batch and held-out rankings", "fraction", ("accuracy", "heldout_accuracy")),
    Chart("Implicit rewards β·log(π/π_ref) of winners and losers", "nats", ("reward_chosen", "reward_rejected")),
)
JUDGE_CHARTS = (
    Chart("Tasks the judge ranked", "tasks", ("tasks",)),
    Chart("Share of pairs tied (its two orders disagreed)", "fraction", ("tie_rate",)),
)
SFT_CHARTS = (Chart("SFT loss per answer token: batch and held-out", "nats", ("loss", "heldout_loss")),)
SAMPLING_CHARTS = (
    Chart("Comparison tasks created", "tasks", ("tasks",)),
    Chart("Sampling speed", "tokens/s", ("tokens_per_s",)),
)

# Evaluations by a function (`evaluate_policy`) are stored finished, in the caller's process: no entry.
KINDS: dict[str, RunKind] = {
    Kind.GENERATE: RunKind(
        check=check_sampling, task="training.execute_run",
        action=("sample_comparisons", "Sample comparisons (up to 50 prompts)"), charts=SAMPLING_CHARTS,
    ),
    Kind.RM: RunKind(
        check=check_reward_model, task="training.run_in_child", processes=True,
        action=("train_reward_model", "Train reward model"), charts=RM_CHARTS,
    ),
    Kind.PPO: RunKind(
        check=partial(check_rl, algorithm="ppo"), task="training.run_in_child", processes=True,
        action=("run_ppo_round", "Run PPO round"), charts=PPO_CHARTS,
    ),
    Kind.RLOO: RunKind(
        check=partial(check_rl, algorithm="rloo"), task="training.run_in_child", processes=True,
        action=("run_rloo_round", "Run RLOO round (k samples per prompt, no critic)"), charts=RLOO_CHARTS,
    ),
    Kind.DPO: RunKind(
        check=check_dpo, task="training.run_in_child", processes=True,
        action=("run_dpo", "Run DPO on the rankings"), charts=DPO_CHARTS,
    ),
    Kind.SFT: RunKind(
        check=check_sft, task="training.run_in_child", processes=True,
        action=("run_sft", "Supervised fine-tuning on demonstrations"), charts=SFT_CHARTS,
    ),
    Kind.ROUND: RunKind(
        check=check_round, task="training.run_round",
        action=("run_full_round", "Run full round ([SFT →] RM → the project's algorithm → promote → sample)"),
    ),
    Kind.JUDGE: RunKind(
        check=check_judging, task="training.execute_run",
        action=("judge_tasks", "AI judge: rank up to 50 tasks it has not ranked"), charts=JUDGE_CHARTS,
    ),
    Kind.BLIND_EVAL: RunKind(
        check=check_blind_evaluation, task="training.execute_run",
        action=("blind_evaluation", "Blind human evaluation: newest policy vs its parent (up to 50 held-out prompts)"),
        charts=(Chart("Blind comparison tasks created", "tasks", ("tasks",)),),
    ),
}  # fmt: skip


def create_run(project: Project, kind: str, *, launched_by=None, parent: TrainingRun | None = None,
               **inputs) -> TrainingRun:  # fmt: skip
    """Checks and stores a queued run of `kind`, for the caller to carry out or send (`launch`).
    Raises LaunchRefused."""
    fields = KINDS[kind].check(project, **inputs)
    config = fields.pop("config", None)
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(project=project, kind=kind, launched_by=launched_by, parent=parent,
                                             **fields)  # fmt: skip
            if config is not None:
                run.config = asdict(config(run.pk) if callable(config) else config)
                run.save(update_fields=["config"])
    except IntegrityError:
        if kind != Kind.ROUND:
            raise
        _refuse_a_second_round(project)  # the unique index caught a concurrent launch
        raise
    return run


def launch(project: Project, kind: str, *, launched_by=None, **inputs) -> TrainingRun:
    """Checks and queues a run of `kind`: its row, then its Celery task once the row is committed.

    Raises LaunchRefused (BrokerUnavailable once the row is committed and the queue cannot be
    reached, the run then marked failed).
    """
    with transaction.atomic():
        run = create_run(project, kind, launched_by=launched_by, **inputs)
        send_on_commit(run)
    return run


def sample_continuation(sender, prompt: Prompt, **kwargs) -> None:
    """A labeler continued a conversation: a sampling run of one prompt writes its K replies now
    (continued conversations come first among the prompts to sample), so the labeler meets them as a
    new task. A refused launch (no active policy, no queue) leaves the prompt to the next sampling."""
    try:
        launch(prompt.project, Kind.GENERATE, prompts=1)
    except LaunchRefused as exc:
        logger.warning("The continued conversation %s waits for the next sampling run: %s", prompt.pk, exc)


def queue_of(kind: str) -> str:
    """The queue whose worker carries out runs of `kind`: its task's route."""
    return settings.CELERY_TASK_ROUTES[KINDS[kind].task]["queue"]


def send_on_commit(run: TrainingRun) -> None:
    """Sends the run's task once the surrounding transaction commits (at once outside one); if the
    broker cannot be reached, the run is marked failed and BrokerUnavailable says so (labeling goes
    on regardless)."""

    def send() -> None:
        try:
            app.send_task(KINDS[run.kind].task, args=[run.pk], queue=queue_of(run.kind))
        except (BrokerError, OSError) as exc:
            message = f"The task queue is unreachable (CELERY_BROKER_URL): {exc}. Start Redis and the workers."
            TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
                status=TrainingRun.Status.FAILED, error=message, finished_at=timezone.now()
            )
            raise BrokerUnavailable(message) from exc

    transaction.on_commit(send)


def _refuse_a_second_round(project: Project) -> None:
    live = TrainingRun.objects.filter(project=project, kind=Kind.ROUND).exclude(status__in=TrainingRun.FINISHED)
    current = live.first()
    if current is not None:
        raise RoundInProgress(
            f"A round of {project.name!r} is already {current.status} (run {current.pk}); wait for it or cancel it."
        )


def start_due_rounds() -> list[TrainingRun]:
    """The periodic check: a round for every project with enough new rankings and no live round."""
    started = []
    for project in Project.objects.select_related("recipe"):
        if new_rankings_since_last_reward_model(project) < project.recipe.retrain_threshold:
            continue
        try:
            started.append(launch(project, Kind.ROUND))
        except RoundInProgress:
            continue
    return started
