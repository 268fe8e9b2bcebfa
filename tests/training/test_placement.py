"""Every stage follows the worker's device and dtype: with TRAINING_DTYPE=bfloat16 on the CPU (the
stand-in for a GPU in bf16), every attention block that runs computes in bfloat16, frozen
weights are held in it, trained ones stay in float32, and the run row records what it ran on."""

from contextlib import contextmanager

import pytest
import torch
from django.core.management import call_command

from training.executors import carry_out
from training.executors.fresh_scores import execute_fresh_scoring
from training.models import TrainingRun
from training.services import create_run

pytestmark = pytest.mark.django_db

FAST = {
    "reward_model_config": {"lr": 1e-3, "max_length": 64},
    "ppo_config": {"steps": 1, "batch_prompts": 2, "minibatch_size": 4, "max_new_tokens": 6, "lr": 1e-3},
    "dpo_config": {"epochs": 1, "batch_prompts": 2, "lr": 1e-3, "max_length": 64, "heldout_fraction": 0.3},
    "sft_config": {"epochs": 1, "batch_prompts": 2, "lr": 1e-3, "max_length": 64, "include_top_ranked": True},
}


@pytest.fixture
def project(ranked_project, settings):
    settings.TRAINING_DEVICE, settings.TRAINING_DTYPE = "cpu", "bfloat16"
    for field, value in FAST.items():
        setattr(ranked_project.recipe, field, value)
    ranked_project.recipe.save()
    return ranked_project


@contextmanager
def layer_forwards():
    """(device, output dtype, weight dtype, weight trainable) of every attention block's forward: its
    output is its last projection's, in the compute dtype under autocast (the residual stream
    around it stays in float32 when the weights are)."""
    seen = []

    def hook(module, args, output):
        if type(module).__name__.endswith("Attention"):
            hidden = output[0] if isinstance(output, tuple) else output
            weight = module.q_proj.weight
            seen.append((hidden.device.type, hidden.dtype, weight.dtype, weight.requires_grad))

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def assert_all_in_bfloat16(seen: list) -> None:
    assert seen, "no transformer layer ran"
    assert {(device, out) for device, out, _, _ in seen} == {("cpu", torch.bfloat16)}
    for _, _, weight, trainable in seen:
        assert weight == (torch.float32 if trainable else torch.bfloat16)


def run_stage(project, kind: str, **inputs) -> TrainingRun:
    with layer_forwards() as seen:
        run = carry_out(create_run(project, kind, **inputs).pk)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert_all_in_bfloat16(seen)
    assert {k: run.hardware[k] for k in ("device", "dtype", "accelerator")} == {
        "device": "cpu", "dtype": "bfloat16", "accelerator": None
    }  # fmt: skip
    assert run.hardware["peak_memory_mib"] > 0
    return run


@pytest.mark.parametrize("trunk", ["frozen", "full"])
def test_reward_model_training_and_fresh_scoring(project, trunk):
    project.recipe.reward_model_config = {**FAST["reward_model_config"], "trunk": trunk}
    project.recipe.save()
    run_stage(project, "rm")
    for n in range(2):
        project.prompts.create(text=f"New question {n}?")
    run_stage(project, "generate", prompts=2)  # new comparisons, ranked below, scored fresh
    from labeling.services import do_assign_next_task, do_submit_ranking

    labeler = project.labelers.first()
    assignment = do_assign_next_task(project, labeler)
    do_submit_ranking(assignment.task_id, labeler, [[c.pk] for c in assignment.task.display_completions()])
    with layer_forwards() as seen:
        assert execute_fresh_scoring(project.pk) == 1
    assert_all_in_bfloat16(seen)


@pytest.mark.parametrize("kind", ["rloo", "ppo"])
def test_rl_steps(project, kind):
    run_stage(project, "rm")
    run_stage(project, kind)


@pytest.mark.parametrize("kind", ["dpo", "sft"])
def test_fine_tuning_steps(project, kind, client, admin_user):
    run = run_stage(project, kind)
    client.force_login(admin_user)
    page = client.get(run.get_absolute_url()).content.decode()
    assert "Ran on cpu in bfloat16 · peak memory (RSS)" in page
    assert client.get(f"/api/runs/{run.pk}/").json()["hardware"]["dtype"] == "bfloat16"


def test_evaluation_and_blind_evaluation_sampling(project):
    run_stage(project, "rm")
    with layer_forwards() as seen:
        call_command("evaluate_policy", project=project.name, preference="labeling.demo.preferences:shorter",
                     a=0, b=0, best_of=2, limit=2)  # fmt: skip
    assert_all_in_bfloat16(seen)
    assert TrainingRun.objects.get(kind="eval").hardware["dtype"] == "bfloat16"
    run_stage(project, "sft")  # v1, to judge blind against v0
    project.prompts.create(text="A prompt held out for people to judge?", heldout=True)
    with layer_forwards() as seen:
        run = carry_out(create_run(project, "blind_eval", prompts=1).pk)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert_all_in_bfloat16(seen)


def test_a_worker_asked_for_a_gpu_it_lacks_fails_the_run_saying_so(project, settings):
    if torch.cuda.is_available():
        pytest.skip("this worker has a GPU")
    settings.TRAINING_DEVICE = "cuda"
    run = carry_out(create_run(project, "rm").pk)
    assert run.status == TrainingRun.Status.FAILED
    assert "TRAINING_DEVICE is 'cuda', but this worker sees no CUDA GPU" in run.error


def test_with_lora_the_base_is_frozen_in_the_compute_dtype_and_the_merged_policy_saved_in_float32(project):
    import json

    from django.conf import settings

    from training.models import PolicyVersion

    project.recipe.sft_config = {**FAST["sft_config"], "lora_rank": 4, "lr": 1e-2}
    project.recipe.save()
    run = run_stage(project, "sft")  # the base's weights frozen in bfloat16, the forwards in it too
    version = PolicyVersion.objects.get(created_by_run=run)
    saved = json.loads((settings.MODEL_STORE / version.checkpoint / "config.json").read_text())
    assert saved.get("dtype", saved.get("torch_dtype")) == "float32"
