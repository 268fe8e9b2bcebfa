"""SFT, DPO and RLOO runs on the tiny model: each makes a new policy version, records the version KL
is measured to, and registers nothing when it fails or is cancelled."""

import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from labeling.models import ComparisonTask, Demonstration
from training.executors import carry_out
from training.executors.round import round_steps
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.runs import Reporter, do_cancel_run
from training.services import LaunchRefused, create_run

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
        setattr(ranked_project.recipe, field, value)
    ranked_project.recipe.save()
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
    finished = carry_out(create_run(project, kind, **inputs).pk)
    assert finished.status == TrainingRun.Status.SUCCEEDED, finished.error
    return finished


def test_sft_on_demonstrations_written_through_the_page_makes_the_kl_anchor(project, client, labeler, capsys):
    write_demonstrations_through_the_page(client, project, labeler)
    call_command("sft", project=project.name, sync=True)
    sft = PolicyVersion.objects.get(project=project, status="active")
    assert sft.version == 1 and sft.kl_reference == sft and sft.created_by_run.kind == "sft"
    assert re.search(r"Policy v1 \(active\) from [3-5] answers: loss", capsys.readouterr().out)  # some held out
    # The next RL steps measure KL to the SFT policy, not to their own starting weights.
    carry_out(create_run(project, "rm").pk)
    run(project, "rloo")
    second = PolicyVersion.objects.get(project=project, status="active")
    assert second.version == 2 and second.kl_reference == sft
    third = run(project, "rloo")
    assert PolicyVersion.objects.get(created_by_run=third).kl_reference == sft
    first_step = next(m for m in third.metrics if "kl" in m)
    assert first_step["kl"] != pytest.approx(0.0, abs=1e-3)  # v2 has moved away from v1 already


def test_sft_without_demonstrations_is_refused_with_what_to_do(factory_ranked_project):
    with pytest.raises(LaunchRefused, match="no demonstrations.*Ask labelers for ideal answers"):
        create_run(factory_ranked_project, "sft")
    with pytest.raises(CommandError, match="no demonstrations"):
        call_command("sft", project=factory_ranked_project.name, sync=True)


def test_sft_can_train_on_each_ranking_s_top_completion(project):
    project.recipe.sft_config = {**FAST["sft_config"], "include_top_ranked": True}
    project.recipe.save()
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
    carry_out(create_run(project, "rm").pk)
    finished = run(project, "rloo")
    steps = [m for m in finished.metrics if "score" in m]
    assert len(steps) == 2 and all(m["samples"] == 2 * 4 for m in steps)
    assert all("value_loss" not in m and "score_spread" in m for m in steps)
    assert finished.config["advantage_estimator"] == "rloo"


@pytest.mark.parametrize("kind", ["sft", "dpo", "rloo"])
def test_a_failed_save_registers_no_policy(project, kind, monkeypatch):
    project.recipe.sft_config = {**FAST["sft_config"], "include_top_ranked": True}
    project.recipe.save()
    if kind == "rloo":
        carry_out(create_run(project, "rm").pk)

    def crash(self, folder, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("transformers.PreTrainedModel.save_pretrained", crash)
    finished = carry_out(create_run(project, kind).pk)
    assert finished.status == "failed" and "disk full" in finished.error
    assert PolicyVersion.objects.filter(project=project).count() == 1


@pytest.mark.parametrize("kind", ["sft", "dpo", "rloo"])
def test_a_run_cancelled_while_it_trains_registers_nothing(project, kind, monkeypatch):
    project.recipe.sft_config = {**FAST["sft_config"], "include_top_ranked": True}
    project.recipe.save()
    if kind == "rloo":
        carry_out(create_run(project, "rm").pk)
    launched = create_run(project, kind)
    original = Reporter.__call__

    def cancel_at_the_first_step(report, progress, **metrics):
        if "step" in metrics:
            do_cancel_run(report.run, by="admin")
        return original(report, progress, **metrics)

    monkeypatch.setattr(Reporter, "__call__", cancel_at_the_first_step)
    carry_out(launched.pk)
    launched.refresh_from_db()
    assert launched.status == "cancelled"
    assert PolicyVersion.objects.filter(project=project).count() == 1


@pytest.mark.parametrize(("algorithm", "policy_step"), [("ppo", "ppo"), ("rloo", "rloo"), ("dpo", "dpo")])
def test_a_round_runs_the_project_s_algorithm(project, algorithm, policy_step):
    project.recipe.algorithm = algorithm
    project.recipe.save()
    project.prompts.create(text="A new prompt for the new policy?")
    round_ = carry_out(create_run(project, "round").pk)
    assert round_.status == "succeeded", round_.error
    steps = [(s.kind, s.status) for s in round_.steps.order_by("id")]
    assert steps == [("rm", "succeeded"), (policy_step, "succeeded"), ("generate", "succeeded")]
    new = PolicyVersion.objects.get(project=project, status="active")
    assert new.version == 1 and ComparisonTask.objects.filter(policy_version=new).exists()


def test_a_dpo_round_can_leave_the_reward_model_out(project):
    project.recipe.algorithm = "dpo"
    assert steps_of(project) == ["rm", "dpo", "generate"]
    project.recipe.dpo_trains_reward_model = False
    project.recipe.save()
    assert steps_of(project) == ["dpo", "generate"]
    round_ = carry_out(create_run(project, "round").pk)
    assert round_.status == "succeeded", round_.error
    assert [s.kind for s in round_.steps.order_by("id")] == ["dpo", "generate"]
    assert not RewardModelVersion.objects.filter(project=project).exists()
    project.recipe.algorithm = "rloo"  # the switch is DPO's: an RL step needs its reward model
    assert steps_of(project) == ["rm", "rloo", "generate"]


def test_a_round_starts_with_sft_once_enough_new_demonstrations_arrived(project, client, labeler):
    project.recipe.sft_threshold = 5
    project.recipe.save()
    assert steps_of(project) == ["rm", "rloo", "generate"]
    write_demonstrations_through_the_page(client, project, labeler)
    assert steps_of(project) == ["sft", "rm", "rloo", "generate"]
    project.recipe.promotion = "manual"
    project.recipe.save()
    round_ = carry_out(create_run(project, "round").pk)
    assert round_.status == "succeeded", round_.error
    sft, rloo = (PolicyVersion.objects.get(created_by_run__kind=kind) for kind in ("sft", "rloo"))
    assert rloo.parent == sft and rloo.kl_reference == sft  # the RL step started from the waiting SFT policy
    assert steps_of(project) == ["rm", "rloo", "generate"]  # those demonstrations were used


def steps_of(project) -> list[str]:
    return [kind.value for kind in round_steps(project)]
