"""The project dashboard in a real Chromium, with data from several rounds: rankings by five
labelers with overlap over a week (one reverses the others), three reward models with fresh
scores, three PPO rounds, and blind evaluations of each new policy against its parent."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from labeling.models import ComparisonTask, Completion, Ranking
from labeling.services import do_set_gold_order, do_set_judge, do_store_ai_ranking
from tests.browser.conftest import screenshot
from tests.browser.test_ranking import log_in
from tests.factories import ComparisonTaskFactory, PolicyVersionFactory, ProjectFactory, UserFactory
from training.models import EvalPair, PolicyVersion, RankingScore, RewardModelVersion, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LABELERS = ["ann", "bob", "cat", "dan", "rev"]


def noisy_order(ids: list[int], rng: random.Random, reverse: bool = False) -> list[list[int]]:
    """Best first by a hidden quality (the id), with some noise; `reverse` turns it upside down."""
    keyed = sorted(ids, key=lambda cid: cid + rng.gauss(0, 1.2), reverse=not reverse)
    return [[cid] for cid in keyed]


def seed_rounds(project, users) -> None:
    rng = random.Random(0)
    now = timezone.now()
    versions = [PolicyVersionFactory(project=project, version=n, status="retired") for n in range(4)]
    rankings = []
    for n in range(36):
        task = ComparisonTaskFactory(prompt__project=project, policy_version=versions[n // 12], target_overlap=3)
        ids = [item.completion_id for item in task.items.order_by("position")]
        for name in rng.sample(LABELERS, 3):
            order = noisy_order(ids, rng, reverse=name == "rev" and rng.random() < 0.8)
            rankings.append(Ranking.objects.create(task=task, labeler=users[name], order=order))
    gold = ComparisonTaskFactory(prompt__project=project, policy_version=versions[0])
    ids = [item.completion_id for item in gold.items.order_by("position")]
    do_set_gold_order(gold, [[cid] for cid in sorted(ids, reverse=True)])
    for name in LABELERS:
        Ranking.objects.create(task=gold, labeler=users[name], order=noisy_order(ids, rng, reverse=name == "rev"))
    for v, heldout in enumerate([0.61, 0.66, 0.69], start=1):
        through = rankings[len(rankings) * v // 4]
        rm = RewardModelVersion.objects.create(
            project=project, version=v, checkpoint="x", heldout_accuracy=heldout, accuracy=heldout + 0.1,
            tie_rate=0.0, trained_through_ranking_id=through.pk, trained_through_time=now, rankings_count=v * 27,
            metrics={"heldout": {"pairs": 60, "calibration": [
                {"bin": [0.2 * b, 0.2 * b + 0.2], "predicted": 0.2 * b + 0.1, "observed": 0.15 + 0.16 * b, "pairs": 12}
                for b in range(5)
            ]}},
        )  # fmt: skip
        fresh = [
            r
            for r in rankings
            if through.pk < r.pk <= rankings[min(len(rankings) - 1, len(rankings) * (v + 1) // 4)].pk
        ]
        RankingScore.objects.bulk_create(
            RankingScore(ranking=r, reward_model=rm, scores=[0, 0, 0, 0], pairs=6, agreed=rng.choice([3, 4, 4, 5]))
            for r in fresh
        )  # fmt: skip
        run = TrainingRun.objects.create(
            project=project, kind="ppo", status="succeeded", policy=versions[v - 1],
            metrics=[
                {"step": s, "score": -0.8 + 0.6 * v + 0.05 * s + rng.gauss(0, 0.05), "kl": 0.5 * v + 0.08 * s}
                for s in range(1, 21)
            ],
        )  # fmt: skip
        PolicyVersion.objects.filter(pk=versions[v].pk).update(created_by_run=run, parent=versions[v - 1])
        eval_run = TrainingRun.objects.create(project=project, kind="blind_eval", status="succeeded")
        for _ in range(12):  # the newer policy wins less each round: the score rises, the win rate does not
            task = ComparisonTaskFactory(prompt__project=project, policy_version=versions[v], k=2, kind="eval")
            first, second = task.display_completions()
            Completion.objects.filter(pk=first.pk).update(policy_version=versions[v - 1])
            EvalPair.objects.create(task=task, run=eval_run, version_a=versions[v - 1], version_b=versions[v])
            for name in rng.sample(LABELERS[:4], 2):
                outcome = rng.random()
                order = [[second.pk], [first.pk]] if outcome < 0.75 - 0.12 * v else [[first.pk], [second.pk]]
                Ranking.objects.create(
                    task=task, labeler=users[name], order=order if outcome < 0.95 else [[first.pk, second.pk]]
                )
    everything = list(Ranking.objects.order_by("id").values_list("pk", flat=True))
    for i, pk in enumerate(everything):  # a week of labeling, in the order it happened
        Ranking.objects.filter(pk=pk).update(created_at=now - timedelta(days=6 - i * 7 // len(everything)))


def test_the_dashboard_draws_every_chart_from_several_rounds(page, live_server, admin_user):
    project = ProjectFactory(name="Helpful answers", k=4, overlap=3, agreement_threshold=0.6)
    users = {name: UserFactory(username=name) for name in LABELERS}
    seed_rounds(project, users)
    judge = do_set_judge(project, backend="endpoint", model="judge-7b", base_url="http://127.0.0.1:8000/v1")
    rng = random.Random(1)
    for task in ComparisonTask.objects.filter(project=project, state="open")[:24]:  # an AI judge as careful as most
        ids = [item.completion_id for item in task.items.order_by("position")]
        do_store_ai_ranking(task.pk, judge, noisy_order(ids, rng), {"judge": judge.identity})
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/training/projects/{project.pk}/dashboard/")
    expect(page.locator("figure.chart .uplot")).to_have_count(9)
    for title in [
        "Rankings per day",
        "Rankings per labeler",
        "Labeler agreement, gold accuracy and RM agreement",
        "Reward-model accuracy by version",
        "Reward-model calibration on held-out pairs",
        "PPO reward-model score per step",
        "PPO KL to the reference per step",
        "Win rate of b over a, with 95% intervals",
        "Learning curve: each policy version against the rankings so far",
    ]:
        expect(page.locator("figcaption", has_text=title)).to_be_visible()
    expect(page.locator("tr.flagged")).to_contain_text("rev")
    judged = page.locator("tr", has=page.locator(".badge.ai"))
    expect(judged).to_contain_text(judge.account.username)
    expect(page.get_by_text("and 24 by the AI judge")).to_be_visible()
    # uPlot paints the axes and their labels on the canvas: every chart's spec names both.
    specs = page.locator("figure.chart script").evaluate_all("els => els.map((el) => JSON.parse(el.textContent))")
    assert len(specs) == 9 and all(spec["unit"] and spec["x_label"] for spec in specs)
    screenshot(page, "dashboard-1280")
