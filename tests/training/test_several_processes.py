"""Runs on two training processes (TRAINING_PROCESSES=2): the worker starts `accelerate launch`,
the ranks join over gloo on the CPU, each trains on its slice of every batch, and only rank 0
writes. A reward model, and DPO (the SFT/DPO loop), then train as one process does on the same
data; a PPO round (accelerate's DDP, a critic averaged by hand) finishes with finite figures."""

import math

import pytest

from training.executors import carry_out
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.services import create_run
from training.supervisor import child_command, supervise_in_child

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RM = {"lr": 1e-3, "final_lr": 1e-4, "max_length": 64, "heldout_fraction": 0.4, "batch_prompts": 3, "min_steps": 4}
DPO = {"epochs": 2, "batch_prompts": 3, "lr": 1e-3, "max_length": 64, "heldout_fraction": 0.4}
PPO = {"steps": 2, "batch_prompts": 2, "minibatch_size": 4, "ppo_epochs": 1, "max_new_tokens": 6, "lr": 1e-3}


@pytest.fixture
def processes(settings, monkeypatch, child_env):
    """Sets the worker's TRAINING_PROCESSES; its children read the test database from child_env."""

    def use(count: int) -> None:
        settings.TRAINING_PROCESSES = count
        monkeypatch.setenv("TRAINING_PROCESSES", str(count))
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two ranks on two cores

    return use


def _carried_out_in_child(project, kind: str, **inputs) -> TrainingRun:
    run = create_run(project, kind, **inputs)
    supervise_in_child(run.pk)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, f"{run.error}\n{run.log_tail}"
    return run


def _curve(run: TrainingRun, key: str) -> list[float]:
    return [point[key] for point in run.metrics if point.get(key) is not None]


def test_only_kinds_that_train_are_launched_on_several_processes(factory_ranked_project, processes):
    processes(2)
    rm = create_run(factory_ranked_project, "rm")
    sampling = create_run(factory_ranked_project, "generate", prompts=1)
    assert child_command(rm.pk)[1:7] == ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                                         "--num_machines"]  # fmt: skip
    assert child_command(sampling.pk)[1:] == [child_command(sampling.pk)[1], "execute_run", str(sampling.pk)]
    processes(1)
    assert "accelerate.commands.launch" not in child_command(rm.pk)


@pytest.mark.slow
def test_a_reward_model_trains_on_two_processes_as_on_one(ranked_project, processes, model_store):
    ranked_project.recipe.reward_model_config = RM
    ranked_project.recipe.save(update_fields=["reward_model_config"])
    outcome = {}
    for count in (1, 2):
        processes(count)
        run = _carried_out_in_child(ranked_project, "rm")
        version = RewardModelVersion.objects.get(created_by_run=run)
        outcome[count] = run, version.heldout_accuracy, version.metrics["heldout"]["loss"]
        assert run.hardware["processes"] == count
        # the next run starts from the policy's trunk as this one did, not warm from this version
        RewardModelVersion.objects.filter(pk=version.pk).delete()
    (one, accuracy_one, loss_one), (two, accuracy_two, loss_two) = outcome[1], outcome[2]
    assert len(_curve(one, "loss")) >= 4
    assert _curve(two, "loss") == pytest.approx(_curve(one, "loss"), rel=1e-4, abs=1e-6)
    assert _curve(two, "heldout_loss") == pytest.approx(_curve(one, "heldout_loss"), rel=1e-4, abs=1e-6)
    assert (accuracy_two, loss_two) == (accuracy_one, pytest.approx(loss_one, rel=1e-4))
    # rank 1 wrote no progress point of its own, and one checkpoint a run was saved
    assert len(two.metrics) == len(one.metrics)
    assert len(list((model_store / "reward_models" / f"project-{ranked_project.pk}").iterdir())) == 2


@pytest.mark.slow
def test_dpo_trains_on_two_processes_as_on_one(ranked_project, processes):
    ranked_project.recipe.dpo_config = DPO
    ranked_project.recipe.save(update_fields=["dpo_config"])
    runs, base = {}, PolicyVersion.objects.get(project=ranked_project, version=0)
    for count in (1, 2):
        processes(count)
        runs[count] = _carried_out_in_child(ranked_project, "dpo", policy=base)  # both from the same weights
    assert _curve(runs[2], "loss") == pytest.approx(_curve(runs[1], "loss"), rel=1e-4, abs=1e-6)
    assert _curve(runs[2], "heldout_loss") == pytest.approx(_curve(runs[1], "heldout_loss"), rel=1e-4, abs=1e-6)
    assert len(runs[2].metrics) == len(runs[1].metrics)
    assert PolicyVersion.objects.filter(created_by_run=runs[2]).count() == 1


@pytest.mark.slow
def test_a_ppo_round_on_two_processes_finishes_with_finite_figures_and_one_saved_policy(
    ranked_project, processes, model_store, client, admin_user
):
    ranked_project.recipe.reward_model_config = {"lr": 1e-3, "max_length": 64}
    ranked_project.recipe.ppo_config = PPO
    ranked_project.recipe.save()
    carry_out(create_run(ranked_project, "rm").pk)
    processes(2)
    run = _carried_out_in_child(ranked_project, "ppo")
    steps = [point for point in run.metrics if "score" in point]
    assert [point["step"] for point in steps] == [1, 2]  # rank 0's points alone
    assert all(math.isfinite(v) for point in steps for v in point.values() if isinstance(v, float))
    assert steps[0]["samples"] == PPO["batch_prompts"]  # both ranks' samples counted (one a prompt with a critic)
    assert {"value_loss", "explained_variance"} <= set(steps[0])
    version = PolicyVersion.objects.get(created_by_run=run)
    saved = model_store / "policies" / f"project-{ranked_project.pk}"
    assert [p.name for p in saved.iterdir()] == [version.checkpoint.rsplit("/")[-1]]  # rank 0 alone saved
    assert run.hardware["processes"] == 2
    client.force_login(admin_user)
    assert "Ran on cpu in float32 · 2 training processes" in client.get(run.get_absolute_url()).content.decode()
