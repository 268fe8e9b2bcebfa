"""The promotion gate: each check passes and fails on hand-made figures; a policy it keeps back stays
a candidate, and its page, the project home and the API say why; it is weighed again as evidence
arrives; and the learning curve's figures are the hand-computed ones."""

import math

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.models import Ranking
from labeling.statistics import wilson_interval
from tests.factories import ComparisonTaskFactory, PolicyVersionFactory, ProjectFactory, UserFactory
from training.executors import carry_out
from training.gate import do_promote_through_gate, do_weigh_candidates_again, weigh
from training.models import EvalPair, PolicyVersion, RankingScore, RewardModelVersion, TrainingRun
from training.reports.metrics import project_metrics
from training.services import create_run, do_register_base_policy

pytestmark = pytest.mark.django_db

GOOD_PROBE = {"mean_length": 40.0, "parent_mean_length": 44.0, "eos_rate": 0.5, "parent_eos_rate": 0.4,
              "disagreement": 0.05}  # fmt: skip


@pytest.fixture
def project():
    project = ProjectFactory(name="Gated", k=2)
    do_register_base_policy(project)
    return project


def task(project, **fields):
    """A comparison task of the project's base policy."""
    return ComparisonTaskFactory(prompt__project=project, policy_version=project.policies.get(version=0), **fields)


def reward_model(project, version: int = 1, parent=None, heldout=(None, 0), disagreement=0.04):
    ranking = Ranking.objects.create(task=task(project), labeler=UserFactory(), order=[[1], [2]])
    accuracy, pairs = heldout
    return RewardModelVersion.objects.create(
        project=project, version=version, parent=parent, checkpoint=f"rm{version}", heldout_accuracy=accuracy,
        metrics={"heldout": {"pairs": pairs}, "train": {"disagreement": disagreement}},
        trained_through_ranking_id=ranking.pk, trained_through_time=ranking.created_at, rankings_count=10,
    )  # fmt: skip


def fresh_labels(rm: RewardModelVersion, agreed: int, pairs: int) -> None:
    """Fresh rankings the reward model scored: `agreed` of `pairs` ordered as the labeler did."""
    ranking = Ranking.objects.create(task=task(rm.project), labeler=UserFactory(), order=[[1], [2]])
    RankingScore.objects.create(ranking=ranking, reward_model=rm, scores=[0, 1], pairs=pairs, agreed=agreed)


def candidate(project, rm=None, probe=GOOD_PROBE, version: int = 1) -> PolicyVersion:
    base = PolicyVersion.objects.get(project=project, version=0)
    return PolicyVersionFactory(project=project, version=version, parent=base, reward_model=rm, probe=probe)


def by_name(policy) -> dict:
    return {check.name: check for check in weigh(policy)}


def test_the_reward_model_check_passes_only_when_fresh_accuracy_lies_above_chance(project):
    rm = reward_model(project)
    fresh_labels(rm, agreed=60, pairs=80)  # 75%: Wilson low ≈ 0.645
    check = by_name(candidate(project, rm))["reward model"]
    assert check.passed and "reward model v1 on fresh rankings" in check.text and "75%" in check.text
    fresh_labels(rm, agreed=10, pairs=80)  # now 70 of 160 = 43.75%
    check = by_name(PolicyVersion.objects.get(project=project, version=1))["reward model"]
    assert not check.passed
    assert check.text.startswith("The reward model is not yet better than chance on new rankings")


def test_without_fresh_labels_of_its_own_the_reward_model_check_reads_its_parents_then_its_held_out(project):
    parent = reward_model(project, version=1)
    rm = reward_model(project, version=2, parent=parent, heldout=(0.9, 60))
    fresh_labels(rm, agreed=5, pairs=5)  # too few pairs of its own
    fresh_labels(parent, agreed=20, pairs=60)  # the parent was at chance on the rankings v2 then trained on
    check = by_name(candidate(project, rm))["reward model"]
    assert not check.passed and "its parent v1 on the rankings it then trained on" in check.text
    RankingScore.objects.filter(reward_model=parent).delete()
    check = by_name(PolicyVersion.objects.get(project=project, version=1))["reward model"]
    assert check.passed and "held-out rankings" in check.text  # 90% of 60 pairs: low ≈ 0.80


def test_the_ensemble_check_compares_disagreement_on_the_policys_answers_with_the_training_comparisons(project):
    rm = reward_model(project, disagreement=0.04)
    project.recipe.gate_max_disagreement_ratio = 2.0
    project.recipe.save()
    assert by_name(candidate(project, rm, {**GOOD_PROBE, "disagreement": 0.08}))["ensemble"].passed  # 2.0×
    far = candidate(project, rm, {**GOOD_PROBE, "disagreement": 0.09}, version=2)  # 2.25×
    check = by_name(far)["ensemble"]
    assert not check.passed and "has left what the reward model knows" in check.text and "2.2×" in check.text
    one_head = candidate(project, rm, {k: v for k, v in GOOD_PROBE.items() if k != "disagreement"}, version=3)
    assert by_name(one_head)["ensemble"].passed and "Not checked" in by_name(one_head)["ensemble"].text


@pytest.mark.parametrize(
    ("new", "passed"), [(22.0, True), (66.0, True), (21.9, False), (66.1, False)]
)  # parent 44: ±50% is 22 to 66
def test_the_length_check_bounds_the_change_in_mean_length(project, new, passed):
    check = by_name(candidate(project, probe={**GOOD_PROBE, "mean_length": new}))["length"]
    assert check.passed is passed
    if not passed:
        assert "beyond ±50%" in check.text


@pytest.mark.parametrize(("new", "passed"), [(0.1, True), (0.7, True), (0.05, False), (0.75, False)])  # parent 0.4
def test_the_eos_check_bounds_the_change_in_eos_rate(project, new, passed):
    project.recipe.gate_max_eos_change = 0.3
    project.recipe.save()
    check = by_name(candidate(project, probe={**GOOD_PROBE, "eos_rate": new}))["EOS rate"]
    assert check.passed is passed
    if not passed:
        assert "beyond ±30 points" in check.text


def second_round_candidate(project, probe: dict) -> PolicyVersion:
    """v2, trained from v1, with v0 (the base) its KL reference."""
    return PolicyVersionFactory(project=project, version=2, parent=candidate(project), probe={**probe, "reference": 0})


def test_length_and_eos_are_bounded_against_the_kl_reference_too_so_a_shortcut_cannot_come_back_in_steps(project):
    # the addresses_the_reader run: EOS rate 0.17 (base) -> 0.42 (v3) -> 0.81 (v4), each step inside ±0.5
    creeping = {**GOOD_PROBE, "eos_rate": 0.81, "parent_eos_rate": 0.42, "reference_eos_rate": 0.17,
                "mean_length": 31.0, "parent_mean_length": 49.9, "reference_mean_length": 59.0}  # fmt: skip
    checks = by_name(second_round_candidate(project, creeping))
    eos, length = checks["EOS rate"], checks["length"]
    assert not eos.passed and eos.text == (
        "How often its answers end moved too far: 81% of its answers end by themselves against its parent's 42% "
        "and its KL reference v0's 17%, beyond ±50 points."
    )
    assert length.passed  # 31 tokens: -38% from its parent's, -47% from the base's, both inside ±50%
    assert "its parent's 49.9 (-38%) and its KL reference v0's 59.0 (-47%)" in length.text
    v2 = PolicyVersion.objects.get(project=project, version=2)
    v2.probe["mean_length"] = 29.0
    shorter = by_name(v2)["length"]
    assert not shorter.passed and "its KL reference v0's 59.0 (-51%), beyond ±50%" in shorter.text


def test_a_first_round_candidate_is_bounded_against_its_parent_alone_when_that_is_its_reference(project):
    probe = {**GOOD_PROBE, "reference": 0, "reference_eos_rate": 0.4, "reference_mean_length": 44.0}
    checks = by_name(candidate(project, probe=probe))
    assert checks["EOS rate"].passed and "KL reference" not in checks["EOS rate"].text
    assert checks["length"].passed and "KL reference" not in checks["length"].text


def blind_rankings(project, a, b, wins: int, losses: int) -> None:
    """Blind comparisons of b against a, one labeler each: b's answer first `wins` times."""
    run = TrainingRun.objects.create(project=project, kind="blind_eval", status="succeeded", policy=b, baseline=a)
    for n in range(wins + losses):
        blind = ComparisonTaskFactory(prompt__project=project, policy_version=b, kind="eval", k=2)
        first, second = (item.completion for item in blind.items.order_by("position"))
        type(first).objects.filter(pk=first.pk).update(policy_version=a)
        EvalPair.objects.create(task=blind, run=run, version_a=a, version_b=b)
        order = [[second.pk], [first.pk]] if n < wins else [[first.pk], [second.pk]]
        Ranking.objects.create(task=blind, labeler=UserFactory(), order=order)


def test_the_blind_evaluation_check_waits_for_enough_pairs_then_for_an_interval_above_half(project):
    project.recipe.gate_blind_pairs = 20
    project.recipe.save()
    policy = candidate(project)
    check = by_name(policy)["blind evaluation"]
    assert not check.passed and "at least 20 pairs (0 so far)" in check.text
    base = PolicyVersion.objects.get(project=project, version=0)
    blind_rankings(project, base, policy, wins=12, losses=8)  # 60% of 20: low ≈ 0.39
    assert not by_name(policy)["blind evaluation"].passed
    blind_rankings(project, base, policy, wins=14, losses=1)  # 26 of 35 = 74%: low ≈ 0.58
    assert by_name(policy)["blind evaluation"].passed


def test_a_policy_the_gate_keeps_back_stays_a_candidate_and_says_why_on_its_pages_and_in_the_api(project, admin_client):
    rm = reward_model(project)
    fresh_labels(rm, agreed=40, pairs=80)  # 50%: not above chance
    run = TrainingRun.objects.create(project=project, kind="rloo", status="succeeded", finished_at=timezone.now(),
                                     policy=PolicyVersion.objects.get(project=project, version=0))  # fmt: skip
    policy = candidate(project, rm, {**GOOD_PROBE, "mean_length": 10.0})
    PolicyVersion.objects.filter(pk=policy.pk).update(created_by_run=run)
    policy.refresh_from_db()
    assert do_promote_through_gate(policy) is False
    policy.refresh_from_db()
    assert policy.status == "candidate"
    assert [c["name"] for c in policy.gate if not c["passed"]] == ["reward model", "length"]
    assert PolicyVersion.objects.get(project=project, status="active").version == 0
    home = admin_client.get(reverse("training:project", args=[project.pk])).content.decode()
    assert "was kept back by the promotion gate" in home
    assert "The reward model is not yet better than chance on new rankings" in home
    page = admin_client.get(run.get_absolute_url()).content.decode()
    assert "the promotion gate kept it back" in page and "Gate: length" in page
    [row] = [p for p in admin_client.get(f"/api/policies/?project={project.pk}").json()["results"] if p["version"] == 1]
    assert row["status"] == "candidate"
    assert {c["name"]: c["passed"] for c in row["gate"]} == {
        "reward model": False, "ensemble": True, "length": False, "EOS rate": True,
    }  # fmt: skip
    admin = admin_client.get(reverse("admin:training_policyversion_change", args=[policy.pk])).content.decode()
    assert "FAILED: <strong>reward model</strong>" in admin


def test_a_kept_back_candidate_is_weighed_again_and_promoted_once_the_evidence_is_in(project):
    rm = reward_model(project)
    policy = candidate(project, rm)
    assert do_promote_through_gate(policy) is False  # no fresh labels, no held-out figure: cannot tell
    assert do_weigh_candidates_again() == []
    fresh_labels(rm, agreed=70, pairs=90)
    assert do_weigh_candidates_again() == [policy]
    policy.refresh_from_db()
    assert policy.status == "active" and all(c["passed"] for c in policy.gate)


def test_the_learning_curve_matches_a_hand_computation(project, admin_client):
    base = PolicyVersion.objects.get(project=project, version=0)
    rm = reward_model(project)  # its fixture ranking is the project's first training ranking
    fresh_labels(rm, agreed=30, pairs=40)
    v1 = candidate(project, rm, version=1)
    PolicyVersion.objects.filter(pk=base.pk).update(status="retired")
    PolicyVersion.objects.filter(pk=v1.pk).update(status="active", created_at=timezone.now())
    blind_rankings(project, base, v1, wins=15, losses=5)
    TrainingRun.objects.create(
        project=project, kind="eval", status="succeeded", policy=v1, baseline=base, preference="m:f",
        metrics=[{"n": 24, "win_rate_b_over_a": 0.75, "mean_score_a": 0, "mean_score_b": 1, "best_of": 1}],
    )  # fmt: skip
    [row] = project_metrics(project)["learning_curve"]
    # Training rankings made before v1: the reward model's fixture ranking and the fresh one (eval
    # rankings never count): 2.
    assert (row["version"], row["rankings"], row["reward_model_version"]) == (1, 2, 1)
    human = row["win_rate_over_base_human"]  # 15 of 20
    assert (human["share"], human["pairs"]) == (0.75, 20)
    assert (human["low"], human["high"]) == pytest.approx(wilson_interval(0.75, 20))
    low, high = wilson_interval(0.75, 24)
    assert row["win_rate_over_base_function"] == pytest.approx({"share": 0.75, "pairs": 24, "low": low, "high": high})
    fresh = row["reward_model_fresh_accuracy"]  # 30 of 40
    assert (fresh["share"], fresh["pairs"]) == (0.75, 40)
    # Wilson by hand for 15 of 20: z² = 3.8416; centre (0.75 + 0.09604) / 1.19208 = 0.709717;
    # half 1.96·sqrt(0.009375 + 0.0024010) / 1.19208 = 0.178423: [0.531294, 0.888140]
    assert human["low"] == pytest.approx(0.531294, abs=1e-5) and human["high"] == pytest.approx(0.888140, abs=1e-5)
    assert math.isclose(admin_client.get(f"/api/metrics/?project={project.pk}").json()["learning_curve"][0][
        "win_rate_over_base_human"]["share"], 0.75)  # fmt: skip
    page = admin_client.get(reverse("training:dashboard", args=[project.pk]))
    [chart] = [c for c in page.context["charts"] if c["title"].startswith("Learning curve")]
    assert chart["series"]["win rate over v0: human judges"] == [[2, 0.75]]
    home = admin_client.get(reverse("training:project", args=[project.pk])).content.decode()
    assert "Learning curve" in home and "75%" in home


FAST_RM = {"lr": 1e-3, "max_length": 64}
FAST_RLOO = {"steps": 2, "batch_prompts": 4, "minibatch_size": 2, "ppo_epochs": 1, "max_new_tokens": 8}


def test_an_rl_step_probes_its_policy_and_the_gate_weighs_it(ranked_project):
    recipe = ranked_project.recipe
    recipe.promotion_gate, recipe.reward_model_config, recipe.ppo_config = True, FAST_RM, FAST_RLOO
    recipe.save()
    carry_out(create_run(ranked_project, "rm").pk)
    run = carry_out(create_run(ranked_project, "rloo").pk)
    assert run.status == "succeeded", run.error
    policy = PolicyVersion.objects.get(created_by_run=run)
    probe = policy.probe
    assert probe["answers"] == 5 * 3 and probe["parent_answers"] == 15  # 5 prompts, K = 3; v0's comparisons
    assert probe["reference"] == 0 and probe["reference_eos_rate"] == probe["parent_eos_rate"]  # v0 is both
    assert 0 <= probe["eos_rate"] <= 1 and probe["mean_length"] > 0 and probe["disagreement"] > 0
    assert [c["name"] for c in policy.gate] == ["reward model", "ensemble", "length", "EOS rate"]
    passed = all(c["passed"] for c in policy.gate)
    assert policy.status == ("active" if passed else "candidate")
