"""The AI judge ranks tasks as one more labeler: every pair of a task's answers asked in both orders,
the verdicts combined into a whole order (training.core.judging), stored as the judge account's
ranking once the whole task is judged. A run that fails or is cancelled keeps the tasks it finished
and stores nothing of the one it was on."""

from collections.abc import Callable

from django.conf import settings

from labeling.models import Judge
from labeling.services import do_store_ai_ranking, tasks_for_judge
from training.core.config import JudgeConfig
from training.core.judging import (
    Verdict,
    first_is_better,
    judge_chat,
    order_from_verdicts,
    questions,
    verdict_from_text,
)
from training.core.loading import load_model
from training.endpoints import Endpoint
from training.executors.placement import placed
from training.models import TrainingRun
from training.runs import Reporter, check_still_running

TASKS_PER_STEP = 4  # a step's questions go to the model in batches; progress moves after each step

Ask = Callable[[list], list[Verdict]]
"""Judge chats -> a verdict each: whether the first answer is better (None: no usable answer)."""


def local_judge(run: TrainingRun, config: JudgeConfig, report: Reporter) -> Ask:
    """A model on this worker, under its device and dtype rules: the verdict is whether P(A) > P(B) at
    the judge's first reply token."""
    report.phase(0.0, f"loading the judge {config.model}")
    model, tokenizer = load_model(config.model, settings.MODEL_STORE, placed(run), trainable=False)
    return lambda chats: [bool(p > 0.5) for p in first_is_better(model, tokenizer, chats, config.batch_size)]


def endpoint_judge(config: JudgeConfig) -> tuple[Ask, Endpoint]:
    """An OpenAI-compatible endpoint: the verdict is read from its reply (training.core.judging.verdict_from_text)."""
    endpoint = Endpoint(config.base_url, config.model, config.api_key_env, max_calls=config.max_calls)
    return (lambda chats: [verdict_from_text(endpoint.ask(chat)) for chat in chats]), endpoint


def judge_tasks(run: TrainingRun, report: Reporter) -> None:
    config = JudgeConfig(**run.config)
    judge = Judge.objects.select_related("account").get(project=run.project)
    tasks = list(tasks_for_judge(run.project, judge)[: run.prompts])
    endpoint = None
    if config.backend == Judge.Backend.ENDPOINT:
        ask, endpoint = endpoint_judge(config)
    else:
        ask = local_judge(run, config, report)
    judged_by = {"judge": config.judge, "prompt_version": config.prompt_version, "run": run.pk}
    done = tied = pairs = 0
    for step in range(0, len(tasks), TASKS_PER_STEP):
        check_still_running(run)
        batch = [(task, task.display_completions()) for task in tasks[step : step + TASKS_PER_STEP]]
        asked = [(task, answers, question) for task, answers in batch for question in questions(len(answers))]
        chats = [
            judge_chat(config.instructions, task.prompt.chat, answers[q.first].text, answers[q.second].text)
            for task, answers, q in asked
        ]
        verdicts = ask(chats)
        for task, answers in batch:
            mine = {q: v for (t, _, q), v in zip(asked, verdicts, strict=True) if t.pk == task.pk}
            order = order_from_verdicts(len(answers), mine)
            do_store_ai_ranking(task.pk, judge, [[answers[i].pk for i in group] for group in order], judged_by)
            k = len(answers)
            pairs += k * (k - 1) // 2
            tied += sum(len(group) * (len(group) - 1) // 2 for group in order)
        done += len(batch)
        report(
            done / len(tasks),
            step=done,
            phase=f"judged {done} of {len(tasks)} tasks",
            tasks=done,
            tie_rate=tied / pairs,
            **({"calls": endpoint.calls} if endpoint else {}),
        )
    if not tasks:
        report.note("Every task was already ranked by the judge: nothing to do.")
