"""The promotion gate: with automatic promotion, a policy trained from rankings (PPO, RLOO, DPO)
becomes active only when these checks pass; otherwise it stays a candidate, and its page, the
project home and the API say which failed and why. An admin can still promote it by hand.

- **Reward model**: the reward model it was trained against orders fresh rankings (ones it never
  trained on) better than chance: the 95% interval of its accuracy lies above 50%. The evidence is
  its own fresh-label accuracy once it has scored enough pairs; before that, its parent's on the
  rankings this one then trained on (labels new to the parent); before that, its held-out accuracy.
- **Ensemble**: its ensemble disagrees on the policy's own answers at most
  `gate_max_disagreement_ratio` times as much as on the comparisons it trained on: a policy that
  has left what the reward model knows is scored by guesswork (Coste et al. 2024).
- **Length** and **EOS rate**: the policy's answers are not much longer or shorter, nor much more
  or less often finished, than its parent's, nor than its KL reference's (the base or the last SFT
  version) (`gate_max_length_change`, `gate_max_eos_change`): the shortcuts a policy finds when it
  games its reward model, bounded per round and in all.
- **Blind evaluation** (when `gate_blind_pairs` > 0): labelers preferred it to the active policy on
  at least that many pairs, with the win rate's interval above 50%.

Each check reads rows only (the policy's `probe`, taken by the worker when it was made, and the
reward model's figures), so the periodic task can weigh a candidate again as evidence arrives.
"""

from dataclasses import asdict, dataclass

from django.db import transaction
from django.db.models import Sum

from labeling.statistics import MIN_PAIRS_TO_TELL, figure_text, share_of_pairs, win_rate
from training.models import PolicyVersion, RankingScore, Recipe, RewardModelVersion
from training.reports.metrics import win_rates
from training.services import do_promote_policy


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    text: str
    """Why, in words, with the figures behind it."""


def weigh(policy: PolicyVersion) -> list[Check]:
    """The gate's checks of a candidate, in order; every one must pass for it to be promoted."""
    recipe = policy.project.recipe
    checks = [
        reward_model_check(policy.reward_model),
        disagreement_check(policy, recipe.gate_max_disagreement_ratio),
        length_check(policy, recipe.gate_max_length_change),
        eos_check(policy, recipe.gate_max_eos_change),
    ]
    if recipe.gate_blind_pairs:
        checks.append(blind_evaluation_check(policy, recipe.gate_blind_pairs))
    return checks


def do_promote_through_gate(policy: PolicyVersion) -> bool:
    """Weighs the policy, stores the checks on it, and promotes it when every one passed."""
    checks = weigh(policy)
    policy.gate = [asdict(check) for check in checks]
    policy.save(update_fields=["gate"])
    if all(check.passed for check in checks):
        do_promote_policy(policy)
        return True
    return False


def do_weigh_candidates_again() -> list[PolicyVersion]:
    """The periodic check: each project's newest candidate that the gate kept back, newer than its
    active policy, is weighed again (fresh rankings and blind evaluations arrive meanwhile) and
    promoted if it passes now. Returns those promoted."""
    promoted = []
    for recipe in Recipe.objects.filter(promotion=Recipe.Promotion.AUTOMATIC, promotion_gate=True):
        active = PolicyVersion.objects.filter(project_id=recipe.project_id, status=PolicyVersion.Status.ACTIVE).first()
        newest = PolicyVersion.objects.filter(project_id=recipe.project_id).order_by("-version").first()
        if newest is None or active is None or newest.status != PolicyVersion.Status.CANDIDATE or not newest.gate:
            continue
        with transaction.atomic():
            if do_promote_through_gate(newest):
                promoted.append(newest)
    return promoted


def failed_checks(policy: PolicyVersion) -> list[dict]:
    """The stored checks that failed, for pages and the API."""
    return [check for check in policy.gate if not check["passed"]]


# --- the checks ----------------------------------------------------------------------------------


def fresh_accuracy(reward_model: RewardModelVersion) -> dict:
    """The reward model's accuracy on the rankings it scored before any version trained on them."""
    totals = RankingScore.objects.filter(reward_model=reward_model).aggregate(agreed=Sum("agreed"), pairs=Sum("pairs"))
    pairs = totals["pairs"] or 0
    return share_of_pairs((totals["agreed"] or 0) / pairs if pairs else None, pairs)


def reward_model_evidence(reward_model: RewardModelVersion) -> tuple[str, dict]:
    """(what was measured, the share) that says whether the reward model beats chance on new labels."""
    own = fresh_accuracy(reward_model)
    if own["pairs"] >= MIN_PAIRS_TO_TELL:
        return f"reward model v{reward_model.version} on fresh rankings", own
    if reward_model.parent is not None:
        parents = fresh_accuracy(reward_model.parent)
        if parents["pairs"] >= MIN_PAIRS_TO_TELL:
            return f"its parent v{reward_model.parent.version} on the rankings it then trained on", parents
    heldout = reward_model.metrics.get("heldout", {})
    return (
        f"reward model v{reward_model.version} on held-out rankings (no fresh rankings scored yet)",
        share_of_pairs(reward_model.heldout_accuracy, heldout.get("pairs", 0) if heldout else 0),
    )


def reward_model_check(reward_model: RewardModelVersion | None) -> Check:
    if reward_model is None:
        return Check("reward model", True, "Not checked: the policy was trained without a reward model.")
    what, share = reward_model_evidence(reward_model)
    passed = share["share"] is not None and share["low"] > 0.5
    if passed:
        return Check(
            "reward model", True, f"The reward model beats chance on new rankings: {what}, {figure_text(share)}."
        )
    return Check(
        "reward model", False, f"The reward model is not yet better than chance on new rankings: {what}, "
        f"{figure_text(share)}; its interval must lie above 50%.",
    )  # fmt: skip


def disagreement_check(policy: PolicyVersion, max_ratio: float) -> Check:
    own = policy.probe.get("disagreement")
    trained = policy.reward_model.metrics.get("train", {}).get("disagreement") if policy.reward_model else None
    if own is None or not trained:
        return Check("ensemble", True, "Not checked: it needs a reward model with an ensemble of 2 heads or more.")
    ratio = own / trained
    figures = f"{own:.3f} on its own answers against {trained:.3f} on the comparisons it trained on ({ratio:.1f}×)"
    if ratio <= max_ratio:
        return Check("ensemble", True, f"The reward model's ensemble knows the policy's answers: {figures}.")
    return Check(
        "ensemble", False, f"The policy has left what the reward model knows: its ensemble disagrees {figures}, more "
        f"than {max_ratio:g}×.",
    )  # fmt: skip


def baselines(policy: PolicyVersion, figure: str) -> list[tuple[str, float]]:
    """(whose, value) of a probe figure to bound the policy's against: its parent's and, where it is
    another version, its KL reference's. Bounds to the parent alone let a shortcut come back in steps
    that each stay inside them; the reference's bound is on the sum."""
    probe, found = policy.probe, []
    if probe.get(f"parent_{figure}") is not None:
        found.append(("its parent's", probe[f"parent_{figure}"]))
    reference, parent = probe.get("reference"), policy.parent.version if policy.parent else None
    if probe.get(f"reference_{figure}") is not None and reference != parent:
        found.append((f"its KL reference v{reference}'s", probe[f"reference_{figure}"]))
    return found


def length_check(policy: PolicyVersion, max_change: float) -> Check:
    new, olds = policy.probe.get("mean_length"), [(who, old) for who, old in baselines(policy, "mean_length") if old]
    if new is None or not olds:
        return Check("length", True, "Not checked: no answers of the policy or of its parent to measure.")
    changes = [(who, old, new / old - 1) for who, old in olds]
    figures = f"{new:.1f} tokens on average against " + " and ".join(
        f"{who} {old:.1f} ({change:+.0%})" for who, old, change in changes
    )
    if all(round(abs(change), 9) <= max_change for _, _, change in changes):
        return Check("length", True, f"Its answers keep their length: {figures}.")
    return Check("length", False, f"Its answers' length moved too far: {figures}, beyond ±{max_change:.0%}.")


def eos_check(policy: PolicyVersion, max_change: float) -> Check:
    new, olds = policy.probe.get("eos_rate"), baselines(policy, "eos_rate")
    if new is None or not olds:
        return Check("EOS rate", True, "Not checked: no answers of the policy or of its parent to measure.")
    figures = f"{new:.0%} of its answers end by themselves against " + " and ".join(
        f"{who} {old:.0%}" for who, old in olds
    )
    # round: 0.4 - 0.1 is 0.30000000000000004 in floats
    if all(round(abs(new - old), 9) <= max_change for _, old in olds):
        return Check("EOS rate", True, f"Its answers end as often: {figures}.")
    return Check(
        "EOS rate", False, f"How often its answers end moved too far: {figures}, beyond ±{max_change * 100:.0f} points."
    )


def blind_evaluation_check(policy: PolicyVersion, min_pairs: int) -> Check:
    """Its blind evaluations as b (the challenger), against whichever versions they compared it with."""
    rows = [row for row in win_rates(policy.project) if row["b"] == policy.version]
    result = win_rate(*(sum(row[key] for row in rows) for key in ("wins", "ties", "losses")))
    share = share_of_pairs(result.estimate, result.n, min_pairs)
    if share["share"] is not None and share["low"] > 0.5:
        return Check("blind evaluation", True, f"Labelers prefer it in blind comparisons: {figure_text(share)}.")
    if result.n < min_pairs:
        return Check(
            "blind evaluation", False, f"It waits for a blind evaluation of at least {min_pairs} pairs "
            f"({result.n} so far): launch one from the project home.",
        )  # fmt: skip
    return Check("blind evaluation", False, f"Labelers do not prefer it clearly: {figure_text(share)}.")
