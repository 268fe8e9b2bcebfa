"""The loop over several rounds, through the product's own commands: does each round, on the policy's
own new comparisons, leave it better at what the (simulated) labelers want?

    .venv/bin/python benchmarks/loop_curve.py --preference labeling.demo.preferences:plain_words \\
        --arm random --seed 0 --rounds 4 [--recipe '{"ppo_config": {"steps": 8}}']

In a fresh folder (var/loop-curve/NAME: its own SQLite database and model store), the demo project's
50 prompts are sampled once from the base (K=4 or --k, 64 new tokens, the recipe's temperature and top-p;
cached in var/loop-curve/cache-SEED[-kK][-temperatureT]),
then each round:

1. `simulate_labelers`: 3 labelers rank the open comparisons (50) by the preference, Plackett–Luce
   noise 0.5 (seeded by the round);
2. `run_round --sync`: the reward model, RLOO, the promotion gate, then 50 new comparisons sampled
   from the active policy (the new one if promoted);
3. `evaluate_policy`: the active policy over v0 and over the previous round's active policy, on the
   48 held-out prompts of benchmarks/data/heldout_prompts_48.jsonl, judged by the preference (and a
   candidate the gate kept back over v0, to see whether the gate was right);
4. the KL of the active policy to v0 on its own samples of 24 of them.

--seed draws the simulated labelers' noise. The product seeds sampling and RL by run id, so every
seed starts from the same 50 base comparisons and the runs differ by their labels (and all that
follows from them).

After the last round each reward model's fresh-label accuracy is read (scored on the next round's
rankings before the next version trained on them; with uncertainty selection, on its control
share), and beside it the preference's own accuracy on the same labels, a pair it leaves tied
counted as a coin toss: the ceiling of that figure for any reward model. Before the first, how
often the longer answer and the answer that ended by itself win under the preference on the base's
comparisons (a preference a shortcut cannot satisfy sits near 50% on both). One JSON line per
round and one summary line are printed and appended to --out (default var/loop-curve/results.jsonl).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PROJECT = "Demo: helpful answers"
HELDOUT = ROOT / "benchmarks" / "data" / "heldout_prompts_48.jsonl"
SAMPLING = {"max_new_tokens": 64}  # the recipe's; its RL step samples as long (ppo_config)


def own_environment() -> dict:
    """This environment without a database or model store of its own: the run's folder holds both."""
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MODEL_STORE", "CELERY_BROKER_URL")}


def manage(folder: Path, *args: str) -> str:
    """A product command in the run's folder; its output, echoed; a failure stops the benchmark."""
    env = {**own_environment(), "VAR_DIR": str(folder), "DJANGO_ENV": "development"}
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    sys.stderr.write(result.stdout[-2000:] + result.stderr[-2000:])
    if result.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed ({result.returncode})")
    return result.stdout


def fresh_folder(name: str, seed: int, recipe: dict, selection: str, k: int) -> Path:
    """The run's folder from the seed's cached base comparisons (sampled here the first time)."""
    sampled = {key: recipe[key] for key in ("temperature", "top_p") if key in recipe}  # the base samples with them
    suffix = ("" if k == 4 else f"-k{k}") + "".join(f"-{key}{value}" for key, value in sampled.items())
    cache, folder = ROOT / "var" / "loop-curve" / f"cache-{seed}{suffix}", ROOT / "var" / "loop-curve" / name
    if not (cache / "demo.sqlite3").exists():
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        manage(cache, "migrate", "--noinput", "-v", "0")
        manage(cache, "seed_demo")
        setup(cache, {"max_new_tokens": SAMPLING["max_new_tokens"], **sampled}, "random", k)
        manage(cache, "sample_comparisons", "--project", PROJECT, "--prompts", "50", "--sync")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(cache, folder)
    manage(folder, "migrate", "--noinput", "-v", "0")
    setup(folder, {**SAMPLING, "ppo_config": {"max_new_tokens": SAMPLING["max_new_tokens"]}, **recipe}, selection, k)
    return folder


def setup(folder: Path, recipe: dict, selection: str, k: int) -> None:
    code = (
        "from labeling.models import Project\nfrom training.models import Recipe\n"
        f"project = Project.objects.get(name={PROJECT!r})\n"
        f"Project.objects.filter(pk=project.pk).update(selection={selection!r}, k={k})\n"
        f"Recipe.objects.filter(project=project).update(**{recipe!r})\n"
    )
    manage(folder, "shell", "-c", code)


def django(folder: Path) -> None:
    """This process reads the run's database (after its commands have written it)."""
    for name in ("DATABASE_URL", "MODEL_STORE", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    os.environ.update(VAR_DIR=str(folder), DJANGO_ENV="development", DJANGO_SETTINGS_MODULE="webapp.settings")
    import django as django_module  # the settings read VAR_DIR when they load: only now

    django_module.setup()


def shortcut_check(preference: str) -> dict:
    """On the base's comparisons: how often the longer answer, and the one that ended by itself (over
    one cut at max_new_tokens), score higher under the preference."""
    from labeling.management.commands.simulate_labelers import load_preference  # after django()
    from labeling.models import ComparisonTask

    score = load_preference(preference)
    longer = [0, 0]  # wins, pairs
    ended = [0, 0]
    for task in ComparisonTask.objects.filter(kind="train").prefetch_related("completions", "prompt"):
        completions = list(task.completions.all())
        scores = score(task.prompt.text, [c.text for c in completions])
        for (a, sa), (b, sb) in combinations(zip(completions, scores, strict=True), 2):
            if sa == sb:
                continue
            if a.token_count != b.token_count:
                longer[1] += 1
                longer[0] += (sa > sb) == (a.token_count > b.token_count)
            if a.finish_reason != b.finish_reason:
                ended[1] += 1
                ended[0] += (sa > sb) == (a.finish_reason == "eos")
    return {"longer_wins": longer[0] / longer[1] if longer[1] else None, "longer_pairs": longer[1],
            "ended_wins": ended[0] / ended[1] if ended[1] else None, "ended_pairs": ended[1]}  # fmt: skip


def fresh_ceilings(project, preference: str) -> dict[int, float]:
    """Per reward-model version, the fresh-label accuracy of the preference itself on the same
    labelled pairs, each pair it leaves tied counted as a coin toss (0.5): the most a reward model
    could expect there. A preference that ties most pairs of the policy's answers caps it near 50%."""
    from labeling.management.commands.simulate_labelers import load_preference  # after django()
    from labeling.models import Ranking
    from labeling.statistics import order_from_scores, pairwise_agreement
    from training.datasets import as_ranked_prompts
    from training.models import RankingScore

    score = load_preference(preference)
    scored = RankingScore.objects.filter(reward_model__project=project)
    version_of = dict(scored.values_list("ranking_id", "reward_model__version"))
    rankings = Ranking.objects.filter(pk__in=version_of)
    prompt_of = dict(rankings.values_list("id", "task__prompt__text"))
    agreed: dict[int, float] = {}
    pairs: dict[int, int] = {}
    for ranking_id, (_, item) in zip(sorted(version_of), as_ranked_prompts(rankings), strict=True):  # both by id
        version = version_of[ranking_id]
        labelled = pairwise_agreement(item.order, item.order).compared  # the pairs the labeler ordered
        ordered = pairwise_agreement(item.order, order_from_scores(score(prompt_of[ranking_id], item.completions)))
        agreed[version] = agreed.get(version, 0) + ordered.agreed + 0.5 * (labelled - ordered.compared)
        pairs[version] = pairs.get(version, 0) + labelled
    return {version: agreed[version] / pairs[version] for version in pairs if pairs[version]}


def win(folder: Path, preference: str, a: int, b: int) -> dict | None:
    """b over a on the held-out prompts, judged by the preference: the share and its 95% interval."""
    if a == b:
        return None
    manage(folder, "evaluate_policy", "--project", PROJECT, "--preference", preference, "--a", str(a), "--b", str(b),
           "--prompts", str(HELDOUT), "--limit", "48")  # fmt: skip
    from labeling.statistics import share_of_pairs  # after django()
    from training.models import TrainingRun

    figures = TrainingRun.objects.filter(kind="eval").latest("id").metrics[-1]
    return share_of_pairs(figures["win_rate_b_over_a"], figures["n"], min_pairs=1)


def round_figures(project, round_run, seconds: float) -> dict:
    from training.models import PolicyVersion, RewardModelVersion

    steps = {step.kind: step for step in round_run.steps.all()}
    policy_step = next((steps[k] for k in ("rloo", "ppo", "dpo") if k in steps), None)
    made = PolicyVersion.objects.filter(created_by_run=policy_step).first() if policy_step else None
    logged = [m for m in (policy_step.metrics if policy_step else []) if "kl" in m]
    rm = RewardModelVersion.objects.filter(project=project).order_by("-version").first()
    keep = ("score", "score_spread", "kl", "beta", "eos_rate", "mean_length")
    return {
        "round_seconds": round(seconds),
        "step_seconds": {
            k: round((s.finished_at - s.started_at).total_seconds())
            for k, s in steps.items()
            if s.finished_at and s.started_at
        },  # fmt: skip
        "reward_model": rm.version if rm else None,
        "rm_heldout_accuracy": rm.heldout_accuracy if rm else None,
        "rm_heldout_pairs": rm.metrics.get("heldout", {}).get("pairs") if rm else None,
        "candidate": made.version if made else None,
        "promoted": bool(made and made.status == "active"),
        "gate_failed": [c["name"] for c in made.gate if not c["passed"]] if made else [],
        "probe": made.probe if made else {},
        "rl_first": {k: logged[0].get(k) for k in keep} if logged else {},
        "rl_last": {k: logged[-1].get(k) for k in keep} if logged else {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preference", required=True)
    parser.add_argument("--arm", choices=["random", "uncertainty"], default="random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--rankings", type=int, default=50, help="Rankings per round.")
    parser.add_argument("--labelers", type=int, default=3)
    parser.add_argument("--k", type=int, default=4, help="Completions per comparison (the project's K).")
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--recipe", default="{}", help="JSON of recipe fields to set, e.g. the gate's bounds.")
    parser.add_argument("--variant", default="", help="A label for the recipe change, in the name and the plot.")
    parser.add_argument("--name", help="The run's folder under var/loop-curve (default from the arguments).")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "loop-curve" / "results.jsonl")
    args = parser.parse_args()
    recipe = json.loads(args.recipe)
    short = args.preference.rsplit(":", 1)[-1]
    variant = args.variant or (f"k{args.k}" if args.k != 4 else "")
    name = args.name or "-".join(filter(None, [short, args.arm, variant, str(args.seed)]))
    folder = fresh_folder(name, args.seed, recipe, args.arm, args.k)
    django(folder)
    from benchmarks.policy_kl import kl_to_base  # loads torch: after the folder is set
    from labeling.importing import prompt_texts_from_jsonl
    from labeling.models import Project
    from training.datasets import training_rankings
    from training.models import TrainingRun
    from training.reports.metrics import reward_model_rows
    from training.services import active_policy

    project = Project.objects.get(name=PROJECT)
    header = {"name": name, "preference": args.preference, "arm": args.arm, "variant": variant, "k": args.k,
              "seed": args.seed, "recipe": recipe, "shortcuts": shortcut_check(args.preference)}  # fmt: skip
    print(json.dumps(header), flush=True)
    kl_prompts = prompt_texts_from_jsonl(HELDOUT)[:24]
    rows, previous = [], 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, args.rounds + 1):
        manage(folder, "simulate_labelers", "--project", PROJECT, "--preference", args.preference, "--rankings",
               str(args.rankings), "--labelers", str(args.labelers), "--noise", str(args.noise),
               "--seed", str(1000 * args.seed + n))  # fmt: skip
        started = time.monotonic()
        manage(folder, "run_round", "--project", PROJECT, "--sync")
        seconds = time.monotonic() - started
        round_run = TrainingRun.objects.filter(kind="round").latest("id")
        active = active_policy(project).version
        over_base = win(folder, args.preference, 0, active)
        candidate = round_figures(project, round_run, seconds)
        kept_back = candidate["candidate"] if candidate["candidate"] and not candidate["promoted"] else None
        row = {
            "name": name, "round": n, "rankings": training_rankings(project).count(), "active": active,
            **candidate,
            "win_over_base": over_base,
            # a candidate the gate kept back, judged all the same: was the gate right?
            "candidate_win_over_base": win(folder, args.preference, 0, kept_back) if kept_back else None,
            "win_over_previous": over_base if previous == 0 else win(folder, args.preference, previous, active),
            "kl_to_base": kl_to_base(project, kl_prompts) if active else 0.0,
        }  # fmt: skip
        rows.append(row)
        previous = active
        print(json.dumps(row), flush=True)
    fresh = {r["version"]: r["fresh_accuracy"] for r in reward_model_rows(project)}
    ceilings = fresh_ceilings(project, args.preference)
    for row in rows:
        row["rm_fresh_accuracy"] = fresh.get(row["reward_model"])
        row["rm_fresh_ceiling"] = ceilings.get(row["reward_model"])
    with args.out.open("a") as out:
        out.write(json.dumps({**header, "rounds": rows}) + "\n")
    print(json.dumps({"name": name, "fresh_accuracy_by_rm": fresh, "fresh_ceiling_by_rm": ceilings}), flush=True)


if __name__ == "__main__":
    main()
