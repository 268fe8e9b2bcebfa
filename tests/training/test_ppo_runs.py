import pytest
from django.core.management import CommandError, call_command

from labeling.models import ComparisonTask
from training.executors import carry_out
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.services import LaunchRefused, create_run

pytestmark = pytest.mark.django_db

FAST_PPO = {"steps": 3, "batch_prompts": 4, "minibatch_size": 2, "ppo_epochs": 1, "max_new_tokens": 8, "lr": 1e-2}


@pytest.fixture
def project(ranked_project):
    ranked_project.recipe.reward_model_config = {"lr": 1e-3, "max_length": 64}
    ranked_project.recipe.ppo_config = FAST_PPO
    ranked_project.recipe.save()
    carry_out(create_run(ranked_project, "rm").pk)
    return ranked_project


def test_a_ppo_round_makes_a_new_active_policy_and_retires_the_parent(project, settings):
    parent = PolicyVersion.objects.get(project=project, status="active")
    ComparisonTask.objects.filter(project=project).update(state="open")
    run = carry_out(create_run(project, "ppo").pk)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    new = PolicyVersion.objects.get(created_by_run=run)
    parent.refresh_from_db()
    assert (new.version, new.status, new.parent, parent.status) == (1, "active", parent, "retired")
    assert new.reward_model == RewardModelVersion.objects.get()
    assert (settings.MODEL_STORE / new.checkpoint / "config.json").exists()
    assert not ComparisonTask.objects.filter(policy_version=parent, state="open").exists()
    steps = [m for m in run.metrics if "score" in m]
    assert len(steps) == 3 and {"kl", "beta", "clipfrac", "entropy", "explained_variance", "eos_rate"} <= set(steps[0])
    # The next comparisons come from the new policy.
    project.prompts.create(text="A fresh prompt?")
    carry_out(create_run(project, "generate", prompts=10).pk)
    newest = ComparisonTask.objects.filter(policy_version=new)
    assert newest.count() == project.prompts.count()


def test_with_manual_promotion_the_new_policy_waits_as_a_candidate(project):
    project.recipe.promotion = "manual"
    project.recipe.save(update_fields=["promotion"])
    run = carry_out(create_run(project, "ppo").pk)
    assert PolicyVersion.objects.get(created_by_run=run).status == "candidate"
    assert PolicyVersion.objects.get(project=project, status="active").version == 0


def test_a_failed_save_registers_no_policy(project, monkeypatch):
    def crash(self, folder, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("transformers.PreTrainedModel.save_pretrained", crash)
    run = carry_out(create_run(project, "ppo").pk)
    assert run.status == "failed" and "disk full" in run.error
    assert PolicyVersion.objects.filter(project=project).count() == 1
    assert PolicyVersion.objects.get(project=project).status == "active"


def test_ppo_needs_a_reward_model(factory_project):
    with pytest.raises(LaunchRefused, match="no reward model yet"):
        create_run(factory_project, "ppo")


def test_the_command_runs_a_round_with_a_progress_line(project, capsys):
    call_command("ppo_round", project=project.name, steps=2, sync=True)
    out = capsys.readouterr().out
    assert "100%" in out and "kl=" in out and "Policy v1 (active): RM score" in out


def test_the_command_refuses_steps_below_one(factory_ranked_project):
    with pytest.raises(CommandError, match="--steps must be at least 1"):
        call_command("ppo_round", project=factory_ranked_project.name, steps=0, sync=True)
