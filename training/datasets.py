"""What training reads from the database, as querysets and plain values for the core.

No torch here: launch checks, the dashboard's metrics and the executors share these queries.
"""

from django.db.models import Exists, F, OuterRef, Q, QuerySet

from labeling.conversations import Chat, as_chat
from labeling.models import ComparisonTask, Completion, Demonstration, Project, Prompt, Ranking, TaskCompletion
from training.core.rankings import RankedPrompt
from training.models import EvalPair, PolicyVersion, RankingScore, RewardModelVersion, TrainingRun


def training_rankings(project: Project) -> QuerySet[Ranking]:
    """The rankings a reward model trains on: those of training comparisons that staff have not
    excluded. Eval rankings (blind evaluations included) and gold rankings never train it: gold
    tasks are ranked by every labeler, and their many copies would over-weight them."""
    return Ranking.objects.filter(task__project=project, task__kind=ComparisonTask.Kind.TRAIN, excluded=False).exclude(
        task__state=ComparisonTask.State.GOLD
    )


def is_heldout(prompt_id: int, fraction: float) -> bool:
    """A fixed split by prompt (never by pair): the same prompt is always on the same side."""
    return (prompt_id * 2654435761) % 1000 < fraction * 1000


def split_by_prompt(
    data: list[tuple[int, RankedPrompt]], fraction: float, what: str = "ranking"
) -> tuple[list[RankedPrompt], list[RankedPrompt]]:
    """(training, held-out) items of (prompt id, item) pairs, by `is_heldout`; refused, naming
    `what` the items are, when nothing is left to train on."""
    train = [item for prompt_id, item in data if not is_heldout(prompt_id, fraction)]
    heldout = [item for prompt_id, item in data if is_heldout(prompt_id, fraction)]
    if not train:
        raise ValueError(f"Every {what} fell in the held-out split; collect a few more.")
    return train, heldout


def ranked_prompts(
    project: Project, through_ranking_id: int, weights: dict[str, float] | None = None
) -> list[tuple[int, RankedPrompt]]:
    """The project's training rankings up to an id, as (prompt id, RankedPrompt) with texts, in 2 queries."""
    return as_ranked_prompts(training_rankings(project).filter(pk__lte=through_ranking_id), weights)


def as_ranked_prompts(
    rankings: QuerySet[Ranking], weights: dict[str, float] | None = None
) -> list[tuple[int, RankedPrompt]]:
    """Rankings as (prompt id, RankedPrompt): texts in display order, the order as indices into them,
    each weighed by its labeler's entry in `weights` (1 when absent)."""
    rankings = list(rankings.select_related("task__prompt", "labeler").order_by("id"))
    items = TaskCompletion.objects.filter(task__in={r.task_id for r in rankings}).select_related("completion")
    by_task: dict[int, list[TaskCompletion]] = {}
    for item in items.order_by("task", "position"):
        by_task.setdefault(item.task_id, []).append(item)
    out = []
    for ranking in rankings:
        shown = by_task[ranking.task_id]
        index = {item.completion_id: i for i, item in enumerate(shown)}
        out.append(
            (
                ranking.task.prompt_id,
                RankedPrompt(
                    prompt=ranking.task.prompt.chat,
                    completions=[item.completion.text for item in shown],
                    order=[[index[cid] for cid in group] for group in ranking.order],
                    labeler=ranking.labeler.get_username(),
                    weight=(weights or {}).get(ranking.labeler.get_username(), 1.0),
                ),
            )
        )
    return out


def reference_completions(project: Project, limit: int = 256) -> list[tuple[Chat, str]]:
    """What the RM's scores are centred on: demonstrations if any, else the base policy's samples."""
    demos = Demonstration.objects.filter(prompt__project=project).select_related("prompt").order_by("id")[:limit]
    if demos:
        return [(d.prompt.chat, d.text) for d in demos]
    base = Completion.objects.filter(policy_version__project=project, policy_version__version=0)
    return [(c.prompt.chat, c.text) for c in base.select_related("prompt").order_by("id")[:limit]]


def training_prompts(project: Project) -> list[Chat]:
    """The prompts an RL step trains on: all but the held-out ones."""
    rows = project.prompts.filter(heldout=False).order_by("id").values_list("text", "messages")
    return [as_chat(text, messages) for text, messages in rows]


def prompts_to_sample(project: Project, policy: PolicyVersion) -> QuerySet[Prompt]:
    """The project's prompts that have no comparison task from this policy yet: continued conversations
    first (a labeler waits on their replies), then oldest first; held-out prompts are kept for blind
    evaluations."""
    sampled = ComparisonTask.objects.filter(prompt=OuterRef("pk"), policy_version=policy)
    unsampled = project.prompts.filter(heldout=False).exclude(Exists(sampled))
    return unsampled.order_by(F("parent_id").asc(nulls_last=True), "id")


def heldout_prompts_for(a: PolicyVersion, b: PolicyVersion) -> QuerySet[Prompt]:
    """The project's held-out prompts on which these two versions have not been compared yet."""
    same_pair = Q(version_a=a, version_b=b) | Q(version_a=b, version_b=a)
    compared = EvalPair.objects.filter(same_pair, task__prompt=OuterRef("pk"))
    return Prompt.objects.filter(project_id=a.project_id, heldout=True).exclude(Exists(compared)).order_by("id")


def scorable_rankings(project: Project) -> QuerySet[Ranking]:
    """Rankings a reward model is checked against: people's, of training and eval comparisons, not
    excluded by staff. Gold rankings are left out: every labeler ranks the same gold task. The AI
    judge's are left out too: a reward model is judged by whether it agrees with people."""
    kinds = [ComparisonTask.Kind.TRAIN, ComparisonTask.Kind.EVAL]
    return Ranking.objects.filter(task__project=project, task__kind__in=kinds, excluded=False, ai=False).exclude(
        task__state=ComparisonTask.State.GOLD
    )


def fresh_rankings(reward_model: RewardModelVersion) -> QuerySet[Ranking]:
    """Rankings newer than the version's training data that it has not scored yet, oldest first.
    Rankings of tasks the ensemble chose (uncertainty selection) are not fresh labels in this sense:
    they were picked for being hard to order, so they would understate how well it ranks what the
    policy writes; its control share stands in for them."""
    scored = RankingScore.objects.filter(ranking=OuterRef("pk"), reward_model=reward_model)
    newer = scorable_rankings(reward_model.project).filter(pk__gt=reward_model.trained_through_ranking_id)
    newer = newer.exclude(task__chosen_by=ComparisonTask.ChosenBy.ENSEMBLE)
    return newer.exclude(Exists(scored)).order_by("id")


def projects_with_reward_models() -> list[int]:
    return list(Project.objects.filter(reward_models__isnull=False).distinct().values_list("pk", flat=True))


def new_rankings_since_last_reward_model(project: Project) -> int:
    """People's training rankings since the latest reward model: what paces rounds (the AI judge's
    train too, but a judging run does not start a round by itself)."""
    latest = RewardModelVersion.objects.filter(project=project).order_by("-version").first()
    rankings = training_rankings(project).filter(ai=False)
    return rankings.filter(pk__gt=latest.trained_through_ranking_id).count() if latest else rankings.count()


def demonstrations(project: Project) -> QuerySet[Demonstration]:
    """The answers labelers wrote that SFT trains on: held-out prompts' are left out, so a blind
    evaluation on them stays blind."""
    return Demonstration.objects.filter(prompt__project=project, prompt__heldout=False)


def new_demonstrations_since_last_sft(project: Project) -> int:
    """Demonstrations written after the last successful SFT run started (it read those before)."""
    last = TrainingRun.objects.filter(project=project, kind=TrainingRun.Kind.SFT, status=TrainingRun.Status.SUCCEEDED)
    last = last.order_by("-started_at").first()
    found = demonstrations(project)
    return found.filter(created_at__gt=last.started_at).count() if last else found.count()


def sft_examples(project: Project, include_top_ranked: bool) -> list[tuple[int, RankedPrompt]]:
    """(prompt id, RankedPrompt of the answers to train on) per prompt: its demonstrations, and with
    `include_top_ranked` the completion each training ranking put first, alone (rejection sampling)."""
    answers: dict[int, tuple[Chat, list[str]]] = {}
    for demo in demonstrations(project).select_related("prompt").order_by("id"):
        answers.setdefault(demo.prompt_id, (demo.prompt.chat, []))[1].append(demo.text)
    if include_top_ranked:
        for prompt_id, ranked in ranked_prompts(project, through_ranking_id=2**62):
            if len(ranked.order[0]) == 1:
                answers.setdefault(prompt_id, (ranked.prompt, []))[1].append(ranked.completions[ranked.order[0][0]])
    return [(pid, RankedPrompt(text, texts, [list(range(len(texts)))])) for pid, (text, texts) in answers.items()]
