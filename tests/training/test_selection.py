"""Uncertainty selection on the worker: a new reward model rescores the open training tasks, and
sampling keeps the K most disputed of 2K candidates."""

import pytest

from labeling.models import ComparisonTask, Project
from labeling.services import do_assign_next_task
from tests.factories import recipe_data
from training.core.devices import CPU
from training.core.generation import Sample
from training.core.selection import group_members, most_disputed_subset, task_uncertainty
from training.executors import carry_out
from training.executors.selection import Selector
from training.forms import RecipeForm
from training.models import TrainingRun
from training.services import create_run

pytestmark = pytest.mark.django_db

ENSEMBLE = {"lr": 1e-3, "final_lr": 1e-4, "max_length": 64, "heldout_fraction": 0.4, "heads": 3}


@pytest.fixture
def project(ranked_project):
    ranked_project.recipe.reward_model_config = ENSEMBLE
    ranked_project.selection = Project.Selection.UNCERTAINTY
    ranked_project.save()
    ranked_project.recipe.save()
    return ranked_project


def add_prompts(project, n: int) -> None:
    for i in range(n):
        project.prompts.create(text=f"New question {i}: name a colour.")


def test_a_new_reward_model_rescores_the_open_training_tasks(project):
    add_prompts(project, 3)
    carry_out(create_run(project, "generate", prompts=3).pk)  # no RM yet: unscored
    carry_out(create_run(project, "generate", prompts=3, task_kind="eval").pk)
    open_train = ComparisonTask.objects.filter(project=project, state="open", kind="train")
    assert open_train.count() == 3 and not open_train.filter(uncertainty__isnull=False).exists()
    run = carry_out(create_run(project, "rm").pk)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert run.log_tail == "Rescored 3 open training tasks for selection."
    assert any(m.get("phase") == "scoring open tasks" for m in run.metrics)
    selector = Selector.for_project(project, CPU)
    tasks = list(open_train.order_by("id"))
    expected = selector.task_scores(
        [t.prompt.text for t in tasks], [[c.text for c in t.display_completions()] for t in tasks]
    )
    assert [t.uncertainty for t in tasks] == pytest.approx(expected, rel=1e-4) and all(s > 0 for s in expected)
    assert not ComparisonTask.objects.filter(kind="eval", uncertainty__isnull=False).exists()
    assert not ComparisonTask.objects.filter(state="complete", uncertainty__isnull=False).exists()


def test_sampling_keeps_the_k_most_disputed_of_2k_distinct_candidates(project, monkeypatch):
    carry_out(create_run(project, "rm").pk)
    add_prompts(project, 2)
    asked = []

    def six_candidates(model, tokenizer, prompts, k, config, at_least=None):
        asked.append((k, at_least))
        return [[Sample(f"Answer {n} to {p[:14]}", 4, "eos") for n in range(k)] for p in prompts]

    monkeypatch.setattr("training.executors.sampling.sample_distinct", six_candidates)
    run = carry_out(create_run(project, "generate", prompts=2).pk)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert asked == [(6, 3)]  # 2K candidates, at least K
    selector = Selector.for_project(project, CPU)
    for task in ComparisonTask.objects.filter(project=project, state="open").order_by("id"):
        candidates = [f"Answer {n} to {task.prompt.text[:14]}" for n in range(6)]
        (members,) = group_members(
            selector.model, selector.tokenizer, [(task.prompt.text, candidates)], selector.config
        )
        best = [candidates[i] for i in most_disputed_subset(members, 3)]
        shown = [c.text for c in task.display_completions()]
        assert sorted(shown) == sorted(best) and len(set(shown)) == 3
        assert task.uncertainty == pytest.approx(task_uncertainty(members[most_disputed_subset(members, 3)]), rel=1e-4)


def test_the_control_share_keeps_k_as_sampled_and_is_handed_out_first(project, monkeypatch, labeler):
    """Every 1/share-th task keeps its first K candidates as sampled (its score still recorded), so
    the reward model's fresh-label accuracy can be measured on comparisons it did not choose."""
    carry_out(create_run(project, "rm").pk)
    project.control_share = 0.5
    project.save(update_fields=["control_share"])
    add_prompts(project, 2)

    def six_candidates(model, tokenizer, prompts, k, config, at_least=None):
        return [[Sample(f"Answer {n} to {p[:14]}", 4, "eos") for n in range(k)] for p in prompts]

    monkeypatch.setattr("training.executors.sampling.sample_distinct", six_candidates)
    run = carry_out(create_run(project, "generate", prompts=2).pk)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    first, second = ComparisonTask.objects.filter(project=project, state="open").order_by("id")
    assert (first.chosen_by, second.chosen_by) == ("ensemble", "control")  # slots [False, True] at 0.5
    selector = Selector.for_project(project, CPU)
    as_sampled = [f"Answer {n} to {second.prompt.text[:14]}" for n in range(3)]
    assert sorted(c.text for c in second.display_completions()) == as_sampled
    (members,) = group_members(selector.model, selector.tokenizer, [(second.prompt.text, as_sampled)], selector.config)
    assert second.uncertainty == pytest.approx(task_uncertainty(members), rel=1e-4)
    first.uncertainty = 1.0  # however disputed the ensemble's task, the control goes first
    first.save(update_fields=["uncertainty"])
    project.labelers.add(labeler)
    assert do_assign_next_task(project, labeler).task == second


def test_eval_tasks_and_random_selection_sample_k_unscored(project, monkeypatch):
    carry_out(create_run(project, "rm").pk)
    add_prompts(project, 2)
    carry_out(create_run(project, "generate", prompts=1, task_kind="eval").pk)
    project.selection = Project.Selection.RANDOM
    project.save()
    carry_out(create_run(project, "generate", prompts=1).pk)
    new = ComparisonTask.objects.filter(project=project, state="open")
    assert new.count() == 2 and not new.filter(uncertainty__isnull=False).exists()
    assert all(len(t.display_completions()) == 3 and t.chosen_by == "sampling" for t in new)


def test_uncertainty_selection_without_an_ensemble_is_refused_by_the_recipe_form(factory_project):
    factory_project.selection = Project.Selection.UNCERTAINTY  # the project being saved beside its recipe
    recipe = factory_project.recipe
    form = RecipeForm(recipe_data(factory_project, reward_model_config='{"heads": 1}'), instance=recipe)
    assert not form.is_valid()
    assert '"heads" to 2 or more' in " ".join(form.errors["reward_model_config"])
    form = RecipeForm(recipe_data(factory_project, reward_model_config='{"heads": 4}'), instance=recipe)
    assert form.is_valid(), form.errors


def test_uncertainty_selection_is_refused_for_dpo_rounds_that_train_no_reward_model(factory_project):
    factory_project.selection = Project.Selection.UNCERTAINTY
    data = recipe_data(factory_project, reward_model_config='{"heads": 4}', algorithm="dpo")
    del data["dpo_trains_reward_model"]  # the checkbox unticked
    form = RecipeForm(data, instance=factory_project.recipe)
    assert not form.is_valid()
    assert "let DPO rounds train one" in " ".join(form.errors["dpo_trains_reward_model"])
    assert RecipeForm({**data, "dpo_trains_reward_model": "on"}, instance=factory_project.recipe).is_valid()
