"""Best-of-n as an evaluation baseline: `evaluate_policy --best-of N` judges a's one completion
against the one of b's N that the latest reward model scores highest, and the dashboard shows it
beside the policies' win rates."""

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.factories import ProjectFactory
from training.configs import sampling_config
from training.core.generation import sample
from training.core.loading import load_model
from training.core.reward_model import load_reward_model, score_groups
from training.executors import carry_out
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.reports.charts import dashboard_charts
from training.reports.metrics import project_metrics
from training.services import create_run

pytestmark = pytest.mark.django_db

JUDGED: list[tuple[str, list[str]]] = []  # what `longer` was shown, in order


def longer(prompt: str, completions: list[str]) -> list[float]:
    """The ranked project's preference (the longer answer wins), recording what it judged."""
    JUDGED.append((prompt, completions))
    return [float(len(text)) for text in completions]


@pytest.fixture
def trained(ranked_project):
    """The ranked tiny project with reward model v1 trained on its rankings."""
    ranked_project.recipe.reward_model_config = {"lr": 1e-3, "max_length": 64}
    ranked_project.recipe.save(update_fields=["reward_model_config"])
    run = carry_out(create_run(ranked_project, "rm").pk)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    JUDGED.clear()
    return ranked_project


def test_it_judges_the_completion_the_reward_model_scores_highest_of_n(trained, capsys):
    call_command("evaluate_policy", project=trained.name, preference=f"{__name__}:longer", a=0, b=0, best_of=4, limit=3)
    assert "v0 best-of-4 over v0 (picked by RM v1) on 3 prompts: win rate" in capsys.readouterr().out
    run = TrainingRun.objects.get(kind="eval")
    rm = RewardModelVersion.objects.get()
    assert (run.baseline.version, run.policy.version, run.reward_model) == (0, 0, rm)
    figures = run.metrics[-1]
    assert (figures["n"], figures["best_of"], figures["reward_model_version"]) == (3, 4, 1)
    # By hand: the base policy's 4 samples per prompt (same settings and seed), scored by the RM.
    prompts = [prompt for prompt, _ in JUDGED]
    model, tokenizer = load_model(run.policy.checkpoint, settings.MODEL_STORE)
    groups = sample(model, tokenizer, prompts, 4, sampling_config(trained.recipe, 0))
    reward_model, rm_tokenizer = load_reward_model(settings.MODEL_STORE / rm.checkpoint)
    texts = [[s.text for s in group] for group in groups]
    scores = score_groups(reward_model, rm_tokenizer, list(zip(prompts, texts, strict=True)), 64)
    for (_, (_, b_text)), group, row in zip(JUDGED, texts, scores, strict=True):
        assert b_text == group[row.index(max(row))]
    wins = sum(1.0 if len(b) > len(a) else 0.5 if len(b) == len(a) else 0.0 for _, (a, b) in JUDGED)
    assert figures["win_rate_b_over_a"] == pytest.approx(wins / 3)


def test_it_refuses_best_of_n_without_a_reward_model_and_stores_nothing(factory_project):
    with pytest.raises(CommandError, match="Best-of-4 needs a reward model"):
        call_command("evaluate_policy", project=factory_project.name, preference=f"{__name__}:longer", best_of=4)
    with pytest.raises(CommandError, match="--best-of must be 1 or more, not 0"):
        call_command("evaluate_policy", project=factory_project.name, preference=f"{__name__}:longer", best_of=0)
    assert not TrainingRun.objects.filter(kind="eval").exists()


def test_the_dashboard_shows_best_of_n_beside_the_policys_win_rate(client, admin_user, capsys):
    project = ProjectFactory(name="Baseline")
    v0 = PolicyVersion.objects.create(project=project, version=0, checkpoint="x")
    v2 = PolicyVersion.objects.create(project=project, version=2, checkpoint="x", status="active")
    rm = RewardModelVersion.objects.create(
        project=project, version=3, checkpoint="x", trained_through_ranking_id=0,
        trained_through_time="2025-01-01T00:00Z", rankings_count=12,
    )  # fmt: skip
    figures = {"mean_score_a": 1.0, "mean_score_b": 2.0}
    for b, win_rate, n, best_of, reward_model in [(v2, 0.7, 40, 1, None), (v0, 0.6, 10, 8, rm)]:
        metrics = [{**figures, "n": n, "win_rate_b_over_a": win_rate, "best_of": best_of, "reward_model_version": 3}]
        TrainingRun.objects.create(
            project=project, kind="eval", status="succeeded", policy=b, baseline=v0, reward_model=reward_model,
            preference="labeling.demo.preferences:shorter", metrics=metrics,
        )  # fmt: skip

    rows = project_metrics(project)["preference_evals"]
    assert [(r["label"], r["best_of"], r["win_rate"]["share"], r["win_rate"]["pairs"]) for r in rows] == [
        ("v2 over v0", 1, 0.7, 40),
        ("v0 best-of-8 over v0", 8, None, 10),  # 10 prompts: too few to tell
    ]
    # Wilson over the 10 prompts, p = 0.6: centre = (0.6 + 3.8416/20) / 1.38416 = 0.572246,
    # half = 1.96 · sqrt(0.6·0.4/10 + 3.8416/400) / 1.38416 = 1.96 · 0.183314 / 1.38416 = 0.259576
    best_of_8 = rows[1]["win_rate"]
    assert best_of_8["low"] == pytest.approx(0.312670, abs=1e-6)
    assert best_of_8["high"] == pytest.approx(0.831822, abs=1e-6)
    [chart] = [c for c in dashboard_charts(project_metrics(project)) if c["title"].startswith("Win rate of b over a")]
    assert chart["categories"] == ["v2 over v0", "v0 best-of-8 over v0"]
    assert chart["series"] == {"preference function: policy": [[0, 0.7]]}  # only the one with enough prompts

    client.force_login(admin_user)
    body = client.get(reverse("training:dashboard", args=[project.pk])).content.decode()
    assert "<td>v0 best-of-8 over v0</td>" in body and "RM v3, best of 8" in body
    assert "<td>v2 over v0</td>" in body
    assert '<td>70%<span class="evidence">95% CI 55–82%, 40 prompts</span></td>' in body
    assert '<td>too few prompts to tell<span class="evidence">10 prompts</span></td>' in body
    call_command("project_report", project=project.name)
    assert "v0 best-of-8 over v0" in capsys.readouterr().out
