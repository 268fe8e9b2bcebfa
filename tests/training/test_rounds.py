import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from labeling.models import ComparisonTask, Ranking
from labeling.statistics import plackett_luce_order
from tests.factories import ComparisonTaskFactory, ProjectFactory, rank_every_task
from training.executors import carry_out
from training.models import PolicyVersion, RankingScore, RewardModelVersion, TrainingRun
from training.runs import do_cancel_run
from training.services import RoundInProgress, create_run, start_due_rounds

pytestmark = pytest.mark.django_db

FAST = {
    "reward_model_config": {"lr": 1e-3, "max_length": 64},
    "ppo_config": {"steps": 2, "batch_prompts": 4, "minibatch_size": 2, "ppo_epochs": 1, "max_new_tokens": 8},
}


@pytest.fixture
def project(ranked_project):
    for field, value in FAST.items():
        setattr(ranked_project.recipe, field, value)
    ranked_project.recipe.save()
    return ranked_project


def test_a_round_trains_promotes_and_samples_from_the_new_policy(project):
    project.prompts.create(text="A new prompt for the new policy?")
    round_ = carry_out(create_run(project, "round").pk)
    assert round_.status == TrainingRun.Status.SUCCEEDED, round_.error
    new = PolicyVersion.objects.get(project=project, status="active")
    assert new.version == 1 and new.reward_model == RewardModelVersion.objects.get()
    assert ComparisonTask.objects.filter(policy_version=new).count() == project.prompts.count()
    assert not ComparisonTask.objects.filter(policy_version__version=0, state="open").exists()
    steps = round_.steps.order_by("id")
    assert [(s.kind, s.status) for s in steps] == [
        ("rm", "succeeded"),
        ("rloo", "succeeded"),
        ("generate", "succeeded"),
    ]
    assert round_.progress == 1.0


def test_a_round_whose_policy_the_gate_keeps_back_samples_from_it_and_keeps_the_active_one(project):
    project.recipe.promotion_gate = True  # 5 rankings: too few held-out pairs to tell the reward model beats chance
    project.recipe.save()
    round_ = carry_out(create_run(project, "round").pk)
    assert round_.status == TrainingRun.Status.SUCCEEDED, round_.error
    candidate = PolicyVersion.objects.get(project=project, version=1)
    assert candidate.status == "candidate"
    assert [check["name"] for check in candidate.gate if not check["passed"]][:1] == ["reward model"]
    assert PolicyVersion.objects.get(project=project, status="active").version == 0
    assert round_.steps.get(kind="generate").policy == candidate  # its answers go to the labelers
    assert ComparisonTask.objects.filter(policy_version=candidate, state="open").count() == project.prompts.count()
    assert "kept back by the promotion gate" in round_.log_tail


def test_two_rounds_chain_their_versions_and_the_second_learns_from_the_first_policys_comparisons(project, labeler):
    first = carry_out(create_run(project, "round").pk)
    assert first.status == TrainingRun.Status.SUCCEEDED, first.error
    v1, rm1 = PolicyVersion.objects.get(project=project, status="active"), RewardModelVersion.objects.get()
    first_rankings = Ranking.objects.count()
    rank_every_task(project, labeler)  # the comparisons round 1 sampled, from v1
    assert Ranking.objects.filter(task__policy_version=v1).count() == project.prompts.count()
    second = carry_out(create_run(project, "round").pk)
    assert second.status == TrainingRun.Status.SUCCEEDED, second.error
    v2, rm2 = PolicyVersion.objects.get(project=project, status="active"), RewardModelVersion.objects.latest("version")
    assert (v2.version, v2.parent, v2.reward_model) == (2, v1, rm2)  # RL started from round 1's policy
    assert rm2.parent == rm1 and rm2.rankings_count == Ranking.objects.count() > first_rankings  # both rounds'
    assert RankingScore.objects.filter(reward_model=rm1, ranking__task__policy_version=v1).count() == (
        Ranking.objects.count() - first_rankings
    )  # rm1 scored v1's comparisons as fresh labels before rm2 trained on them
    assert second.steps.get(kind="generate").policy == v2


def test_a_second_round_while_one_is_live_is_refused_with_a_reason(factory_ranked_project):
    first = create_run(factory_ranked_project, "round")
    with pytest.raises(RoundInProgress, match=f"already queued \\(run {first.pk}\\)"):
        create_run(factory_ranked_project, "round")
    with pytest.raises(IntegrityError), transaction.atomic():  # enforced by the database, not hoped
        TrainingRun.objects.create(project=factory_ranked_project, kind="round", status="running")
    TrainingRun.objects.filter(pk=first.pk).update(status="failed")
    assert create_run(factory_ranked_project, "round").pk != first.pk


def test_cancelling_a_round_cancels_its_current_step(factory_ranked_project):
    round_ = create_run(factory_ranked_project, "round")
    step = TrainingRun.objects.create(project=factory_ranked_project, kind="rm", status="running", parent=round_)
    assert do_cancel_run(round_, by="admin")
    step.refresh_from_db()
    assert step.status == "cancelled"


def test_a_failed_step_fails_the_round_and_leaves_the_active_policy(project):
    project.recipe.ppo_config = {"steps": 2, "max_new_tokens": 8, "no_such_setting": 1}
    project.recipe.save()
    round_ = carry_out(create_run(project, "round").pk)
    assert round_.status == "failed" and "no_such_setting" in round_.error
    assert PolicyVersion.objects.get(project=project, status="active").version == 0


def test_rounds_start_when_enough_new_rankings_arrived(factory_ranked_project):
    factory_ranked_project.recipe.retrain_threshold = Ranking.objects.count() + 1
    factory_ranked_project.recipe.save()
    assert start_due_rounds() == []
    factory_ranked_project.recipe.retrain_threshold = Ranking.objects.count()
    factory_ranked_project.recipe.save()
    [started] = start_due_rounds()
    assert started.project == factory_ranked_project
    assert start_due_rounds() == []  # one is already queued


def test_the_command_runs_a_round_with_a_progress_line(project, capsys):
    call_command("run_round", project=project.name, sync=True)
    out = capsys.readouterr().out
    assert "Round" in out and "succeeded: rm run" in out and "generate run" in out


def test_plackett_luce_at_zero_noise_sorts_by_score_and_with_noise_varies():
    import random

    assert plackett_luce_order([0.1, 3.0, -1.0, 2.0], 0, random.Random(0)) == [1, 3, 0, 2]
    orders = {tuple(plackett_luce_order([0.0, 0.1, 0.2], 5.0, random.Random(s))) for s in range(30)}
    assert len(orders) > 1


def test_simulated_labelers_rank_through_the_services(capsys):
    project = ProjectFactory(k=3, overlap=2)
    ComparisonTaskFactory.create_batch(4, prompt__project=project, target_overlap=2)
    call_command(
        "simulate_labelers", project=str(project.pk), preference="labeling.demo.preferences:shorter",
        rankings=100, labelers=3,
    )  # fmt: skip
    assert Ranking.objects.count() == 8  # 4 tasks × overlap 2, then nothing is left
    assert Ranking.objects.values("labeler").distinct().count() >= 2
    for ranking in Ranking.objects.select_related("task"):
        lengths = {c.pk: len(c.text.split()) for c in ranking.task.display_completions()}
        ranked = [lengths[group[0]] for group in ranking.order]
        assert ranked == sorted(ranked)  # shorter first, as the preference says
    assert "8 rankings submitted by 3 simulated labelers. No task was left" in capsys.readouterr().out


def test_an_unknown_preference_is_named():
    project = ProjectFactory()
    with pytest.raises(CommandError, match="Cannot load preference 'nowhere:thing'"):
        call_command("simulate_labelers", project=str(project.pk), preference="nowhere:thing", rankings=1)


def test_the_round_page_lists_its_steps(client, admin_user, factory_ranked_project):
    from django.urls import reverse

    round_ = create_run(factory_ranked_project, "round")
    step = TrainingRun.objects.create(
        project=factory_ranked_project, kind="rm", status="running", progress=0.5, parent=round_
    )
    client.force_login(admin_user)
    body = client.get(reverse("training:run", args=[round_.pk])).content.decode()
    assert f'href="{step.get_absolute_url()}"' in body and "Reward model · run" in body and "50%" in body


def test_evaluate_policy_stores_the_win_rate_of_b_over_a(project, tmp_path, capsys):
    carry_out(create_run(project, "round").pk)
    prompts = tmp_path / "heldout.jsonl"
    prompts.write_text('{"prompt": "Held out one?"}\n{"prompt": "Held out two?"}\n')
    call_command(
        "evaluate_policy", project=project.name, preference="labeling.demo.preferences:shorter", prompts=prompts
    )
    out = capsys.readouterr().out
    assert "v1 over v0 on 2 prompts: win rate" in out
    run = TrainingRun.objects.get(kind="eval")
    assert run.baseline.version == 0 and run.policy.version == 1
    assert 0.0 <= run.metrics[-1]["win_rate_b_over_a"] <= 1.0


def test_evaluate_policy_needs_two_versions(factory_ranked_project):
    with pytest.raises(CommandError, match="Both sides are policy v0"):
        call_command(
            "evaluate_policy", project=factory_ranked_project.name, preference="labeling.demo.preferences:shorter"
        )
