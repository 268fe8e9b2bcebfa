"""Does an AI judge stretch human rankings? The reward model's held-out accuracy with N human rankings
alone, and with N human + M judge rankings at the weight the judge earns (and, for contrast, at full
weight), on the label-efficiency setup (benchmarks/label_efficiency.py: its samples, its cached trunk
features, its simulated labelers and test split).

    .venv/bin/python benchmarks/ai_feedback.py [--humans 50] [--judged 150] [--seeds 3]
        [--judges bundled 0.6 0.75 0.9] [--preferences module:fn ...]

Judges: `bundled`, the bundled model asked as the product asks it (training.core.judging: every pair of
a prompt's answers in both orders, the verdict from the letters' log-probabilities, ties where the two
orders disagree), its instructions the product's default judging prompt with the preference described in
words as the guidelines; and a number p, a function standing in for a strong judge that orders each pair
as the preference does with probability p (no position bias). Every judge also ranks the human-ranked
prompts and the labelers' gold tasks: its weight is the product's (labeling.statistics.earned_weight,
cap 0.5) from its agreement with the human rankings there and its gold accuracy; the people's figures
come from their gold tasks. Prints one JSON line per preference, judge and arm (mean and std over seeds)
and each judge's measured agreement with the preference.
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django.setup()  # the judging prompt is the product's model default

from label_efficiency import (  # noqa: E402
    GOLD_TASKS,
    MODEL,
    STORE,
    Labelers,
    Table,
    features,
    gold_counts,
    progress,
    samples,
    true_order,
)

from labeling.models import DEFAULT_JUDGING_PROMPT  # noqa: E402
from labeling.statistics import PairCounts, earned_weight, gold_accuracy, pairwise_agreement  # noqa: E402
from training.core.config import RewardModelConfig  # noqa: E402
from training.core.judging import (  # noqa: E402
    Question,
    first_is_better,
    judge_chat,
    order_from_verdicts,
    questions,
)
from training.core.loading import load_model  # noqa: E402
from training.core.rankings import RankedPrompt  # noqa: E402

CACHE = ROOT / "var" / "bench" / "ai-feedback"
CAP = 0.5  # the product's default weight cap (labeling.models.Judge.weight_cap)
PREFERENCES = {
    "labeling.demo.preferences:addresses_the_reader": "Prefer the answer that speaks to the reader directly, "
    "with 'you' and 'your'.",
    "labeling.demo.preferences:plain_words": "Prefer the answer written in plain, short, everyday words.",
    "labeling.demo.preferences:no_hedging": "Prefer the answer that commits to what it says, without hedging "
    "words such as 'may', 'might', 'usually' or 'perhaps'.",
}


def load_preference(reference: str):
    module, _, name = reference.partition(":")
    return getattr(__import__(module, fromlist=[name]), name)


class BundledJudge:
    """The bundled model as the product's judge; each prompt's order cached on disk by its index."""

    def __init__(self, reference: str, data: list[tuple[str, list[str]]]):
        self.data, self.name = data, reference.rpartition(":")[2]
        self.instructions = f"{DEFAULT_JUDGING_PROMPT}\n\nGuidelines:\n{PREFERENCES[reference]}"
        self.path = CACHE / f"bundled-{self.name}-{len(data)}.json"
        self.cache = {int(k): v for k, v in json.loads(self.path.read_text()).items()} if self.path.exists() else {}
        self.model = None

    def orders(self, prompts: list[int]) -> dict[int, list[list[int]]]:
        missing = [i for i in prompts if i not in self.cache]
        if missing and self.model is None:
            self.model = load_model(MODEL, STORE, trainable=False)
        for n, i in enumerate(missing, start=1):
            prompt, answers = self.data[i]
            asked = questions(len(answers))
            chats = [judge_chat(self.instructions, prompt, answers[q.first], answers[q.second]) for q in asked]
            p = first_is_better(*self.model, chats, batch_size=12)
            self.cache[i] = order_from_verdicts(len(answers), dict(zip(asked, (bool(x > 0.5) for x in p), strict=True)))
            progress(f"judged ({self.name})", n, len(missing))
        if missing:
            print(file=sys.stderr)
            CACHE.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.cache))
        return {i: self.cache[i] for i in prompts}


def function_order(preference, accuracy: float, prompt: str, answers: list[str], rng: random.Random):
    """A judge that orders each pair as the preference does with probability `accuracy` (a tie in the
    preference stays a coin flip), both orders alike."""
    scores = preference(prompt, answers)
    verdicts: dict[Question, bool] = {}
    for i in range(len(answers)):
        for j in range(i + 1, len(answers)):
            right = scores[i] > scores[j] if scores[i] != scores[j] else rng.random() < 0.5
            i_wins = right if rng.random() < accuracy else not right
            verdicts[Question(i, j)], verdicts[Question(j, i)] = i_wins, not i_wins
    return order_from_verdicts(len(answers), verdicts)


def agreement_with(preference, data, orders, prompts) -> PairCounts:
    counts = PairCounts()
    for i in prompts:
        counts += pairwise_agreement(true_order(preference, *data[i]), orders[i])
    return counts


def run(reference: str, judge: str, table: Table, args, config: RewardModelConfig) -> list[dict]:
    preference, data = load_preference(reference), table.data
    results: dict[str, list[float]] = {}
    weights, agreements = [], []
    bundled = BundledJudge(reference, data) if judge == "bundled" else None
    for seed in range(args.seeds):
        rng = random.Random(seed)
        order = list(range(len(data)))
        rng.shuffle(order)
        test, pool = order[: len(order) // 4], order[len(order) // 4 :]
        test_items = [RankedPrompt(*data[i], true_order(preference, *data[i])) for i in test]
        labelers = Labelers(preference, seed)
        gold_prompts = pool[:GOLD_TASKS]
        people = gold_counts(labelers, [data[i] for i in gold_prompts])
        pool = pool[GOLD_TASKS:]
        human_prompts, judged_prompts = pool[: args.humans], pool[args.humans : args.humans + args.judged]
        human = {i: (labelers.names[n % 3], labelers.rank(labelers.names[n % 3], *data[i]))
                 for n, i in enumerate(human_prompts)}  # fmt: skip
        judge_rng = random.Random(1000 + seed)
        needed = gold_prompts + human_prompts + judged_prompts
        if bundled is not None:
            orders = bundled.orders(needed)
        else:
            orders = {i: function_order(preference, float(judge), *data[i], judge_rng) for i in needed}
        # its weight as the product computes it: agreement with the human rankings, and gold accuracy
        evidence = PairCounts()
        for i, (_, given) in human.items():
            evidence += pairwise_agreement(orders[i], given)
        for i in gold_prompts:
            evidence += gold_accuracy(true_order(preference, *data[i]), orders[i])
        weight = earned_weight(evidence, people, CAP)
        weights.append(weight)
        agreements.append(agreement_with(preference, data, orders, judged_prompts).share or 0.0)
        human_items = [RankedPrompt(*data[i], given, who) for i, (who, given) in human.items()]
        arms = {
            "humans": (human_items, human_prompts),
            "humans+judge (earned weight)": (
                human_items + [RankedPrompt(*data[i], orders[i], "judge", weight) for i in judged_prompts],
                human_prompts + judged_prompts,
            ),
            "humans+judge (weight 1)": (
                human_items + [RankedPrompt(*data[i], orders[i], "judge", 1.0) for i in judged_prompts],
                human_prompts + judged_prompts,
            ),
        }
        for arm, (items, prompts) in arms.items():
            if arm != "humans" and weight == 0 and arm.endswith("(earned weight)"):
                items, prompts = arms["humans"]  # weight 0: the judge's rankings change nothing
            model = table.train(replace(config, seed=seed), items, prompts)
            results.setdefault(arm, []).append(table.accuracy(model, test_items, test))
    name = reference.rpartition(":")[2]
    return [
        {
            "preference": name, "judge": judge, "arm": arm, "humans": args.humans,
            "judged": 0 if arm == "humans" else args.judged, "accuracy": round(statistics.mean(v), 4),
            "std": round(statistics.stdev(v), 4) if len(v) > 1 else 0.0, "seeds": len(v), "test_prompts": len(test),
            "judge_agrees_with_preference": round(statistics.mean(agreements), 4),
            "earned_weight": round(statistics.mean(weights), 3),
        }
        for arm, v in results.items()
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument("--humans", type=int, default=50, help="Human rankings (N).")
    parser.add_argument("--judged", type=int, default=150, help="Judge rankings added (M).")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--judges", nargs="+", default=["0.6", "0.75", "0.9", "bundled"])
    parser.add_argument("--preferences", nargs="+", default=list(PREFERENCES))
    args = parser.parse_args()
    config = RewardModelConfig()
    started = time.monotonic()
    data = samples(args.prompts)
    table = Table(data, features(data, config))
    print(json.dumps({"prompts": len(data), "humans": args.humans, "judged": args.judged, "seeds": args.seeds,
                      "prepare_seconds": round(time.monotonic() - started, 1)}))  # fmt: skip
    for reference in args.preferences:
        for judge in args.judges:
            for row in run(reference, judge, table, args, config):
                print(json.dumps(row), flush=True)
    print(json.dumps({"seconds": round(time.monotonic() - started, 1)}))


if __name__ == "__main__":
    main()
