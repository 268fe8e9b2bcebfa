"""SFT, DPO and RLOO runs on the tiny model: each makes a new policy version, records the version KL
is measured to, and registers nothing when it fails or is cancelled."""

import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from labeling.models import ComparisonTask, Demonstration
from training.executors.reward_model import execute_reward_model_run
from training.executors.round import execute_round, round_steps
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.runs import do_cancel_run
from training.services import LaunchRefused, executor_of, launch

pytestmark = pytest.mark.django_db

FAST = {
    "reward_model_config": {"lr": 1e-3, "max_length": 64},
    "ppo_config": {"steps": 2, "batch_prompts": 2, "minibatch_size": 4, "max_new_tokens": 8, "lr": 1e-3},
    "dpo_config": {"epochs": 1, "batch_prompts": 2, "lr": 1e-3, "max_length": 64, "heldout_fraction": 0.3},
    "sft_config": {"epochs": 1, "batch_prompts": 2, "lr": 1e-3, "max_length": 64},
}


@pytest.fixture
def project(ranked_project):
    for field, value in FAST.items():
        setattr(ranked_project, field, value)
    ranked_project.save()
    return ranked_project


def write_demonstrations_through_the_page(client, project, labeler) -> None:
    project.prompts.update(needs_demonstration=True)
    client.force_login(labeler)
    url = reverse("labeling:demonstrations", args=[project.pk])
    for prompt in project.prompts.filter(heldout=False):
        response = client.post(url, {"prompt": prompt.pk, "text": f"The answer to {prompt.text} is short."})
        assert response.status_code == 302
    assert Demonstration.objects.filter(prompt__project=project).count() == project.prompts.count()


def run(project, kind, **inputs) -> TrainingRun:
    finished = executor_of(kind)(launch(project, kind, enqueue=False, **inputs).pk)
    assert finished.status == TrainingRun.Status.SUCCEEDED, finished.error
    return finished


def test_sft_on_demonstrations_written_through_the_page_makes_the_kl_anchor(project, client, labeler, capsys):
    write_demonstrations_through_the_page(client, project, labeler)
    call_command("sft", project=project.name, sync=True)
    sft = PolicyVersion.objects.get(project=project, status="active")
    assert sft.version == 1 and sft.kl_reference == sft and sft.created_by_run.kind == "sft"
    assert re.search(r"Policy v1 \(active\) from [3-5] answers: loss", capsys.readouterr().out)  # some held out
    # The next RL steps measure KL to the SFT policy, not to their own starting weights.
    execute_reward_model_run(launch(project, "rm", enqueue=False).pk)
    run(project, "rloo")
    second = PolicyVersion.objects.get(project=project, status="active")
    assert second.version == 2 and second.kl_reference == sft
    third = run(project, "rloo")
    assert PolicyVersion.objects.get(created_by_run=third).kl_reference == sft
    first_step = next(m for m in third.metrics if "kl" in m)
    assert first_step["kl"] != pytest.approx(0.0, abs=1e-3)  # v2 has moved away from v1 already


def test_sft_without_demonstrations_is_refused_with_what_to_do(factory_ranked_project):
    with pytest.raises(LaunchRefused, match="no demonstrations.*Ask labelers for ideal answers"):
        launch(factory_ranked_project, "sft", enqueue=False)
    with pytest.raises(CommandError, match="no demonstrations"):
        call_command("sft", project=factory_ranked_project.name, sync=True)


def test_sft_can_train_on_each_ranking_s_top_completion(project):
    project.sft_config = {**FAST["sft_config"], "include_top_ranked": True}
    project.save()
    finished = run(project, "sft")
    assert finished.metrics[-1]["demonstrations"] >= 3  # top-ranked completions, no demonstration written


def test_dpo_from_the_rankings_logs_held_out_accuracy_every_step(project, capsys):
    call_command("dpo", project=project.name, sync=True)
    finished = TrainingRun.objects.get(kind="dpo")
    steps = [m for m in finished.metrics if "loss" in m]
    assert steps and all("heldout_accuracy" in m and "reward_chosen" in m for m in steps)
    version = PolicyVersion.objects.get(created_by_run=finished)
    assert version.status == "active" and version.kl_reference is None  # the base is its reference
    assert "held-out implicit-reward accuracy" in capsys.readouterr().out


def test_rloo_has_no_critic_and_samples_k_per_prompt(project):
    execute_reward_model_run(launch(project, "rm", enqueue=False).pk)
    finished = run(project, "rloo")
    steps = [m for m in finished.metrics if "score" in m]
    assert len(steps) == 2 and all(m["samples"] == 2 * 4 for m in steps)
    assert all("value_loss" not in m and "score_spread" in m for m in steps)
    assert finished.config["advantage_estimator"] == "rloo"


@pytest.mark.parametrize("kind", ["sft", "dpo", "rloo"])
def test_a_failed_save_registers_no_policy(project, kind, monkeypatch):
    project.sft_config = {**FAST["sft_config"], "include_top_ranked": True}
    project.save()
    if kind == "rloo":
        execute_reward_model_run(launch(project, "rm", enqueue=False).pk)

    def crash(self, folder, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("transformers.PreTrainedModel.save_pretrained", crash)
    finished = executor_of(kind)(launch(project, kind, enqueue=False).pk)
    assert finished.status == "failed" and "disk full" in finished.error
    assert PolicyVersion.objects.filter(project=project).count() == 1


@pytest.mark.parametrize("kind", ["sft", "dpo", "rloo"])
def test_a_run_cancelled_while_it_trains_registers_nothing(project, kind, monkeypatch):
    project.sft_config = {**FAST["sft_config"], "include_top_ranked": True}
    project.save()
    if kind == "rloo":
        execute_reward_model_run(launch(project, "rm", enqueue=False).pk)
    launched = launch(project, kind, enqueue=False)
    from training import runs

    original = runs.record_progress

    def cancel_at_the_first_step(run, progress, on_progress=None, **metrics):
        if "step" in metrics:
            do_cancel_run(run, by="admin")
        return original(run, progress, on_progress=on_progress, **metrics)

    module = {"sft": "sft", "dpo": "dpo", "rloo": "ppo"}[kind]
    monkeypatch.setattr(f"training.executors.{module}.record_progress", cancel_at_the_first_step)
    executor_of(kind)(launched.pk)
    launched.refresh_from_db()
    assert launched.status == "cancelled"
    assert PolicyVersion.objects.filter(project=project).count() == 1


@pytest.mark.parametrize(("algorithm", "policy_step"), [("ppo", "ppo"), ("rloo", "rloo"), ("dpo", "dpo")])
def test_a_round_runs_the_project_s_algorithm(project, algorithm, policy_step):
    project.algorithm = algorithm
    project.save()
    project.prompts.create(text="A new prompt for the new policy?")
    round_ = execute_round(launch(project, "round", enqueue=False).pk)
    assert round_.status == "succeeded", round_.error
    steps = [(s.kind, s.status) for s in round_.steps.order_by("id")]
    assert steps == [("rm", "succeeded"), (policy_step, "succeeded"), ("generate", "succeeded")]
    new = PolicyVersion.objects.get(project=project, status="active")
    assert new.version == 1 and ComparisonTask.objects.filter(policy_version=new).exists()


def test_a_dpo_round_can_leave_the_reward_model_out(project):
    project.algorithm = "dpo"
    assert steps_of(project) == ["rm", "dpo", "generate"]
    project.dpo_trains_reward_model = False
    project.save()
    assert steps_of(project) == ["dpo", "generate"]
    round_ = execute_round(launch(project, "round", enqueue=False).pk)
    assert round_.status == "succeeded", round_.error
    assert [s.kind for s in round_.steps.order_by("id")] == ["dpo", "generate"]
    assert not RewardModelVersion.objects.filter(project=project).exists()
    project.algorithm = "rloo"  # the switch is DPO's: an RL step needs its reward model
    assert steps_of(project) == ["rm", "rloo", "generate"]


def test_a_round_starts_with_sft_once_enough_new_demonstrations_arrived(project, client, labeler):
    project.sft_threshold = 5
    project.save()
    assert steps_of(project) == ["rm", "rloo", "generate"]
    write_demonstrations_through_the_page(client, project, labeler)
    assert steps_of(project) == ["sft", "rm", "rloo", "generate"]
    project.promotion = "manual"
    project.save()
    round_ = execute_round(launch(project, "round", enqueue=False).pk)
    assert round_.status == "succeeded", round_.error
    sft, rloo = (PolicyVersion.objects.get(created_by_run__kind=kind) for kind in ("sft", "rloo"))
    assert rloo.parent == sft and rloo.kl_reference == sft  # the RL step started from the waiting SFT policy
    assert steps_of(project) == ["rm", "rloo", "generate"]  # those demonstrations were used


def steps_of(project) -> list[str]:
    return [kind.value for kind in round_steps(project)]
