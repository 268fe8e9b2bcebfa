import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from labeling.models import Ranking
from tests.factories import recipe_data
from tests.waiting import wait_until
from training.core.config import RewardModelConfig
from training.datasets import ranked_prompts, split_by_prompt
from training.executors import carry_out
from training.forms import RecipeForm
from training.models import RewardModelVersion, TrainingRun
from training.runs import do_cancel_run
from training.services import LaunchRefused, create_run
from training.supervisor import supervise_in_child

pytestmark = pytest.mark.django_db

FAST = {"lr": 1e-3, "final_lr": 1e-4, "max_length": 64, "heldout_fraction": 0.4}


@pytest.fixture
def project(ranked_project):
    ranked_project.recipe.reward_model_config = FAST
    ranked_project.recipe.save(update_fields=["reward_model_config"])
    return ranked_project


def test_rankings_become_ranked_prompts_in_display_order_without_excluded_ones(factory_ranked_project):
    first = Ranking.objects.order_by("id").first()
    Ranking.objects.filter(pk=first.pk).update(excluded=True)
    data = ranked_prompts(factory_ranked_project, Ranking.objects.order_by("-id").first().pk)
    assert len(data) == Ranking.objects.count() - 1
    ranking = Ranking.objects.order_by("id")[1]
    prompt_id, item = data[0]
    shown = ranking.task.display_completions()
    assert prompt_id == ranking.task.prompt_id and item.labeler == "labeler"
    assert item.completions == [c.text for c in shown]
    assert [[shown[i].pk for i in group] for group in item.order] == ranking.order


def test_a_run_stores_a_normalised_version_with_held_out_metrics(project, settings):
    run = carry_out(create_run(project, "rm").pk)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    version = RewardModelVersion.objects.get()
    assert (version.version, version.parent, version.created_by_run) == (1, None, run)
    assert version.rankings_count == 5 and version.trained_through_ranking_id == Ranking.objects.last().pk
    assert version.accuracy is not None and 0 <= version.tie_rate <= 1
    assert "offset" in version.normalisation
    assert (settings.MODEL_STORE / version.checkpoint / "reward_head.safetensors").exists()
    phases = [m["phase"] for m in run.metrics if "phase" in m]  # what the run page says it is doing
    # The split goes by prompt id, and ids depend on what the database made before this test.
    train, heldout = split_by_prompt(ranked_prompts(project, version.trained_through_ranking_id),
                                     RewardModelConfig(**run.config).heldout_fraction)  # fmt: skip
    assert phases[0] == "reading rankings and loading the reward model" and phases[-3:] == [
        f"scoring {len(train)} training and {len(heldout)} held-out ranked prompts",
        "the reference offset: the mean score of the reference completions",
        "saving the reward model",
    ]
    steps = [m for m in run.metrics if "loss" in m]
    assert steps and all("accuracy" in m and "tie_rate" in m for m in steps)
    assert run.progress == 1.0


def test_the_next_run_warm_starts_from_the_latest_version(project):
    carry_out(create_run(project, "rm").pk)
    carry_out(create_run(project, "rm").pk)
    first, second = RewardModelVersion.objects.order_by("version")
    assert (second.version, second.parent) == (2, first)


def test_a_crash_while_saving_leaves_no_version_and_no_folder(project, settings, monkeypatch):
    def crash(model, tokenizer, folder):
        (folder / "config.json").write_text("{}")  # half-written
        raise OSError("disk full")

    monkeypatch.setattr("training.executors.reward_model.save_reward_model", crash)
    run = carry_out(create_run(project, "rm").pk)
    assert run.status == TrainingRun.Status.FAILED and "disk full" in run.error
    assert not RewardModelVersion.objects.exists()
    folder = settings.MODEL_STORE / "reward_models" / f"project-{project.pk}"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_no_rankings_means_no_run(factory_project):
    with pytest.raises(LaunchRefused, match="has no rankings"):
        create_run(factory_project, "rm")
    assert not TrainingRun.objects.filter(kind="rm").exists()


def test_the_command_trains_with_a_progress_line_and_prints_the_metrics(project, capsys):
    call_command("train_reward_model", project=project.name, sync=True)
    out = capsys.readouterr().out
    assert "100%" in out and "loss=" in out
    assert "Reward model v1: held-out accuracy" in out and "5 rankings" in out


def test_the_command_refuses_a_project_without_rankings(factory_project):
    with pytest.raises(CommandError, match="has no rankings"):
        call_command("train_reward_model", project=factory_project.name, sync=True)


def test_a_bad_override_is_refused_by_the_recipe_form(factory_project):
    data = recipe_data(factory_project, reward_model_config='{"learning_rate": 1}')
    form = RecipeForm(data, instance=factory_project.recipe)
    assert not form.is_valid()
    assert "learning_rate" in " ".join(form.errors["reward_model_config"])


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_training_in_a_child_process(project, child_env):
    run = create_run(project, "rm")
    supervise_in_child(run.pk)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error + run.log_tail
    assert RewardModelVersion.objects.get().created_by_run == run


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_child_that_dies_marks_its_run_failed(project, child_env, monkeypatch):
    run = create_run(project, "rm")
    monkeypatch.setenv("TRAINING_PROCESSES", "0")  # the child's settings refuse it: it dies before it takes the run
    supervise_in_child(run.pk)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED
    assert "exited with code 1" in run.error and "ImproperlyConfigured" in run.log_tail


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_training_child_narrates_its_phases_into_the_log_tail_while_it_runs(project, child_env):
    project.recipe.reward_model_config = {
        **FAST,
        "epochs": 5000,
        "patience": 0,
        "trunk": "full",
    }  # runs until cancelled
    project.recipe.save(update_fields=["reward_model_config"])
    run = create_run(project, "rm")
    supervisor = threading.Thread(target=lambda: (supervise_in_child(run.pk), connection.close()))
    supervisor.start()
    seen_running: list[str] = []

    def a_training_step_is_told() -> bool:
        run.refresh_from_db()
        if run.status == TrainingRun.Status.RUNNING and run.log_tail:
            seen_running.append(run.log_tail)
        return bool(seen_running) and "training step" in seen_running[-1]

    try:
        wait_until(a_training_step_is_told, 120, "the log tail told no training step while the run ran")
    finally:
        cancelled = do_cancel_run(run, by="the test")  # the run trains until cancelled
        supervisor.join(timeout=60)
    assert cancelled
    assert seen_running, "the log tail stayed empty while the run ran"
    # The tail keeps the last lines only: under load the first phase may have scrolled out of it by
    # the first look, so the phases' order is read from the run's metrics below.
    assert "training step" in seen_running[-1] and "loss=" in seen_running[-1]
    run.refresh_from_db()
    phases = [point["phase"] for point in run.metrics if "phase" in point]
    assert phases[0] == "reading rankings and loading the reward model"
    assert any(p.startswith("training step 1 of ") for p in phases)
