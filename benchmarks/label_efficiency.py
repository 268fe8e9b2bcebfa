"""How many rankings does the reward model need? Held-out pair accuracy per number of rankings, on
preferences that are not about length.

    .venv/bin/python benchmarks/label_efficiency.py [--prompts 300] [--sizes 25 50 100 200 280 400]
        [--seeds 3] [--arms new active reliable steady today] [--preferences module:fn ...] [--config JSON]

1. K=4 completions per prompt from the bundled model (temperature 0.7, 64 new tokens), sampled once
   into var/bench/label-efficiency/: the demo's prompts, then prompts made from topics × phrasings.
2. Every completion goes once through the bundled model's trunk (the reward model's starting
   point); the features are cached beside the samples. With a frozen trunk that is all the trunk
   work there is, so each arm below trains heads only and a whole table takes minutes.
3. Per preference and seed, the prompts are split 3:1 into a pool and a test set. Three simulated
   labelers rank pool prompts (Plackett–Luce, noise 0.5 in the preference's units); the third
   reverses its order half the time. Accuracy is over the test prompts' strict pairs as the
   preference itself orders them (no labeler noise): chance is 50%.

Arms: `today` (the defaults before this benchmark: the whole trunk trained, 1 epoch, lr 9e-6 to
3e-6; slow, run it with --arms today), `new` (the current defaults, rankings in random order),
`active` (the ensemble's most disputed pool prompts ranked first, in rounds of 25), `reliable`
(each ranking weighed by its labeler's reliability, from 8 gold tasks each and their agreement
with the others on the prompts ranked so far more than once, as the product does), `steady` (the third
labeler as careful as the others: what the careless one costs). Prints one JSON line
per preference, arm and size (mean and std over seeds) and, per preference, how often the longer
answer wins and how often the noisy labels agree with the preference.
"""

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labeling.statistics import (  # noqa: E402
    Agreement,
    PairCounts,
    gold_accuracy,
    order_from_scores,
    overlap_agreement,
    plackett_luce_order,
    reliability_weights,
)
from training.core.config import RewardModelConfig, SamplingConfig  # noqa: E402
from training.core.generation import sample_distinct  # noqa: E402
from training.core.loading import load_model  # noqa: E402
from training.core.rankings import RankedPrompt  # noqa: E402
from training.core.reward_model import RewardModel, new_reward_model  # noqa: E402
from training.core.reward_training import (  # noqa: E402
    completion_features,
    evaluate_scores,
    member_scores,
    train_reward_model,
)
from training.core.selection import task_uncertainty  # noqa: E402

STORE = ROOT / "var" / "models"
CACHE = ROOT / "var" / "bench" / "label-efficiency"
MODEL = "smollm2-135m-instruct"
K, NOISE, ACTIVE_ROUND, GOLD_TASKS = 4, 0.5, 25, 8
TODAY = RewardModelConfig.instructgpt(max_length=256)  # the defaults before this benchmark chose new ones
PREFERENCES = [
    "labeling.demo.preferences:addresses_the_reader",
    "labeling.demo.preferences:plain_words",
    "labeling.demo.preferences:no_hedging",
]
TOPICS = [
    "a hash table", "photosynthesis", "compound interest", "the water cycle", "a sourdough starter",
    "black holes", "vaccines", "inflation", "recursion", "ocean tides", "composting", "jet lag",
    "the immune system", "solar panels", "a credit score", "earthquakes", "public speaking",
    "time management", "learning a language", "house plants", "running a first 5k", "saving money",
    "password security", "the stock market", "climate change", "sleep", "meditation", "coffee",
    "electric cars", "recycling plastic", "writing a CV", "job interviews", "baking bread",
    "the Roman Empire", "volcanoes", "rainbows", "the moon's phases", "bees", "antibiotics",
    "budgeting", "remote work", "cloud computing", "machine learning", "a healthy breakfast",
    "stretching", "caring for a dog", "the French Revolution", "DNA", "gravity", "the internet",
    "electricity at home", "chess openings", "gardening in spring", "cooking rice", "first aid",
    "museum visits", "train travel", "hiking safety", "tea", "knitting",
]  # fmt: skip
PHRASINGS = [
    "Explain {} to a beginner.",
    "What should I know about {}?",
    "Give me two tips about {}.",
    "Why does {} matter?",
    "Describe {} in a few sentences.",
]


def prompts(n: int) -> list[str]:
    demo = [
        json.loads(line)["prompt"]
        for name in ("prompts.jsonl", "heldout_prompts.jsonl")
        for line in (ROOT / "labeling" / "demo" / name).read_text().splitlines()
        if line.strip()
    ]
    made = [phrasing.format(topic) for phrasing in PHRASINGS for topic in TOPICS]
    return (demo + made)[:n]


def samples(n: int) -> list[tuple[str, list[str]]]:
    """(prompt, K distinct completions) per prompt, sampled once and cached."""
    path = CACHE / f"samples-{n}.jsonl"
    if not path.exists():
        model, tokenizer = load_model(MODEL, STORE)
        config = SamplingConfig(temperature=0.7, max_new_tokens=64, seed=1)
        texts = prompts(n)
        groups = sample_distinct(model, tokenizer, texts, K, config, progress=lambda d, t: progress("sampled", d, t))
        CACHE.mkdir(parents=True, exist_ok=True)
        with path.open("w") as out:
            for prompt, group in zip(texts, groups, strict=True):
                if group is not None:
                    out.write(json.dumps({"prompt": prompt, "completions": [s.text for s in group]}) + "\n")
        print(file=sys.stderr)
    return [(row["prompt"], row["completions"]) for row in map(json.loads, path.read_text().splitlines())]


def features(data: list[tuple[str, list[str]]], config: RewardModelConfig) -> torch.Tensor:
    """The trunk's output at each completion's last token, prompts' completions laid end to end. -> (N, H)"""
    path = CACHE / f"features-{len(data)}-{config.max_length}-{config.pooling}-{config.depth:.3f}.pt"
    if not path.exists():
        model, tokenizer = new_reward_model(MODEL, STORE, config)
        items = [RankedPrompt(p, c, [list(range(len(c)))]) for p, c in data]
        chunks = []
        for start in range(0, len(items), 32):
            chunks.append(completion_features(model, tokenizer, items[start : start + 32], config))
            progress("forwarded", min(start + 32, len(items)), len(items))
        torch.save(torch.cat(chunks), path)
        print(file=sys.stderr)
    return torch.load(path)


def progress(what: str, done: int, total: int) -> None:
    print(f"\r{what} {done}/{total} prompts", end="", file=sys.stderr, flush=True)


class Labelers:
    """Three simulated labelers; the third reverses its order half the time."""

    names = ("steady-1", "steady-2", "careless")

    def __init__(self, preference, seed: int, careless: bool = True):
        self.preference, self.rng, self.careless = preference, random.Random(seed), careless

    def rank(self, labeler: str, prompt: str, completions: list[str]) -> list[list[int]]:
        order = plackett_luce_order(self.preference(prompt, completions), NOISE, self.rng)
        if self.careless and labeler == "careless" and self.rng.random() < 0.5:
            order = order[::-1]
        return [[i] for i in order]


def true_order(preference, prompt: str, completions: list[str]) -> list[list[int]]:
    """The preference's own order, equal scores tied."""
    return order_from_scores(preference(prompt, completions))


def gold_counts(labelers: Labelers, gold: list[tuple[str, list[str]]]) -> dict[str, PairCounts]:
    """Each labeler's pairs on the gold tasks, ordered as the gold (the preference's own) order."""
    counts = {name: PairCounts() for name in labelers.names}
    for name in labelers.names:
        for prompt, completions in gold:
            expected = true_order(labelers.preference, prompt, completions)
            counts[name] += gold_accuracy(expected, labelers.rank(name, prompt, completions))
    return counts


def reliability(gold: dict[str, PairCounts], labels: dict, tasks: list[tuple[int, str]]) -> dict[str, float]:
    """Each labeler's weight as the product computes it (labeling.quality.labeler_quality): their
    gold pairs pooled with their agreement with the others on the prompts `tasks` ranked twice or
    more, then labeling.statistics.reliability_weights."""
    by_prompt: dict[int, list] = {}
    for i, who in tasks:
        by_prompt.setdefault(i, []).append((who, labels[(i, who)]))
    _, agreement = overlap_agreement(rankings for rankings in by_prompt.values() if len(rankings) > 1)
    return reliability_weights({name: gold[name] + agreement.get(name, Agreement()).pairs for name in gold})


class _Trunk(torch.nn.Module):
    """Stands in for the frozen trunk when the heads train on cached features: a width, no weights."""

    def __init__(self, hidden: int):
        super().__init__()
        self.config = type("Config", (), {"hidden_size": hidden, "num_hidden_layers": 0})()


class Table:
    """The prompts' completions and their cached features, and heads trained on them."""

    def __init__(self, data: list[tuple[str, list[str]]], all_features: torch.Tensor):
        self.data, self.features = data, all_features
        self.rows, start = [], 0
        for _, completions in data:
            self.rows.append(list(range(start, start + len(completions))))
            start += len(completions)

    def features_of(self, prompts: list[int]) -> torch.Tensor:
        return self.features[[r for i in prompts for r in self.rows[i]]]  # (N, H)

    def train(self, config: RewardModelConfig, items: list[RankedPrompt], prompts: list[int]) -> RewardModel:
        """A fresh head ensemble on `items` (rankings of `prompts`), early-stopped on a fifth of them;
        with a trainable trunk, the whole bundled model from its start (slow)."""
        if config.trunk != "frozen":
            model, tokenizer = new_reward_model(MODEL, STORE, config)
            train_reward_model(model, tokenizer, items, config)
            self.tokenizer = tokenizer
            return model
        torch.manual_seed(config.seed)
        model = RewardModel(_Trunk(self.features.shape[1]), config.head_init_std, config.heads)
        cut = max(1, len(items) // 5) if config.patience else 0
        features = (self.features_of(prompts[cut:]), self.features_of(prompts[:cut]) if cut else None)
        train_reward_model(model, None, items[cut:], config, heldout=items[:cut] or None, features=features)
        return model

    def accuracy(self, model: RewardModel, items: list[RankedPrompt], prompts: list[int]) -> float:
        if isinstance(model.backbone, _Trunk):
            members = model.members(self.features_of(prompts)).detach()  # (N, E)
        else:
            members = member_scores(model, self.tokenizer, items, TODAY)
        return evaluate_scores(members, items, "drop")["accuracy"]

    @torch.no_grad()
    def disagreement(self, model: RewardModel, prompt: int) -> float:
        """The task's score as the product's queue orders it (training.core.selection)."""
        return task_uncertainty(model.members(self.features_of([prompt])))  # (K, E) -> float


def labelled(table, labels, weights, tasks, weighted: bool) -> tuple[list[RankedPrompt], list[int]]:
    items = [RankedPrompt(*table.data[i], labels[(i, who)], who, weights[who] if weighted else 1.0) for i, who in tasks]
    return items, [i for i, _ in tasks]


def active_order(table, config, tasks, labels, weights, size: int) -> list[tuple[int, str]]:
    """Rounds of ACTIVE_ROUND tasks: the first at random, each next the tasks whose prompts the
    ensemble trained on the ones so far disputes most."""
    chosen, rest = tasks[:ACTIVE_ROUND], tasks[ACTIVE_ROUND:]
    while len(chosen) < size and rest:
        model = table.train(config, *labelled(table, labels, weights, chosen, weighted=False))
        rest.sort(key=lambda task: -table.disagreement(model, task[0]))
        chosen, rest = chosen + rest[:ACTIVE_ROUND], rest[ACTIVE_ROUND:]
    return chosen


def run_preference(reference: str, table: Table, args, config: RewardModelConfig) -> list[dict]:
    module, _, name = reference.partition(":")
    preference = getattr(__import__(module, fromlist=[name]), name)
    results: dict[tuple[str, int], list[float]] = {}
    longer_wins = label_agreement = 0.0
    for seed in range(args.seeds):
        rng = random.Random(seed)
        order = list(range(len(table.data)))
        rng.shuffle(order)
        test, pool = order[: len(order) // 4], order[len(order) // 4 :]
        test_items = [RankedPrompt(*table.data[i], true_order(preference, *table.data[i])) for i in test]
        labelers = Labelers(preference, seed)
        gold = gold_counts(labelers, [table.data[i] for i in pool[:GOLD_TASKS]])
        weights = {name: 1.0 for name in labelers.names}
        # Each pool prompt once per labeler, in a seeded order: the first N are the team's first N rankings.
        tasks = [(i, labelers.names[(j + n) % 3]) for n in range(3) for j, i in enumerate(pool)]
        rng.shuffle(tasks)
        labels = {(i, who): labelers.rank(who, *table.data[i]) for i, who in tasks}
        steady = Labelers(preference, seed, careless=False)  # the `steady` arm: the third labeler as careful
        steady_labels = {(i, who): steady.rank(who, *table.data[i]) for i, who in tasks}
        longer_wins += _longer_wins(test_items) / args.seeds
        label_agreement += _agreement(table, labels, preference) / args.seeds
        seeded = replace(config, seed=seed)
        for arm in args.arms:
            sequence = (
                active_order(table, seeded, tasks, labels, weights, max(args.sizes)) if arm == "active" else tasks
            )
            arm_config = replace(TODAY, seed=seed) if arm == "today" else seeded
            arm_labels = steady_labels if arm == "steady" else labels
            for size in args.sizes:
                if arm == "reliable":
                    weights = reliability(gold, labels, sequence[:size])
                items = labelled(table, arm_labels, weights, sequence[:size], arm == "reliable")
                model = table.train(arm_config, *items)
                results.setdefault((arm, size), []).append(table.accuracy(model, test_items, test))
    rows = [
        {"preference": name, "arm": arm, "rankings": size, "accuracy": round(statistics.mean(v), 4),
         "std": round(statistics.stdev(v), 4) if len(v) > 1 else 0.0, "seeds": len(v), "test_prompts": len(test)}
        for (arm, size), v in sorted(results.items())
    ]  # fmt: skip
    rows.append({"preference": name, "longer_wins": round(longer_wins, 4), "labels_agree": round(label_agreement, 4)})
    return rows


def _longer_wins(items: list[RankedPrompt]) -> float:
    """Share of the strict pairs the longer completion wins: near 0.5 when length is no shortcut."""
    wins = total = 0
    for item in items:
        for g, better in enumerate(item.order):
            for worse in item.order[g + 1 :]:
                for a in better:
                    for b in worse:
                        la, lb = len(item.completions[a].split()), len(item.completions[b].split())
                        if la != lb:
                            total += 1
                            wins += la > lb
    return wins / total if total else 0.5


def _agreement(table: Table, labels: dict, preference) -> float:
    """Share of the preference's strict pairs that the simulated labels order the same way."""
    agreed = counted = 0
    for (i, _), given in labels.items():
        truth = true_order(preference, *table.data[i])
        position = {c: g for g, group in enumerate(given) for c in group}
        for g, better in enumerate(truth):
            for worse in truth[g + 1 :]:
                for a in better:
                    for b in worse:
                        counted += 1
                        agreed += position[a] < position[b]
    return agreed / counted if counted else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200, 280, 400])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=["new", "active", "reliable", "steady"])
    parser.add_argument("--preferences", nargs="+", default=PREFERENCES)
    parser.add_argument("--config", type=json.loads, default={}, help="RewardModelConfig overrides (JSON).")
    args = parser.parse_args()
    config = RewardModelConfig(**args.config)
    started = time.monotonic()
    data = samples(args.prompts)
    table = Table(data, features(data, config))
    prepared = time.monotonic() - started
    print(json.dumps({"prompts": len(data), "k": K, "config": asdict(config), "prepare_seconds": round(prepared, 1)}))
    for reference in args.preferences:
        for row in run_preference(reference, table, args, config):
            print(json.dumps(row), flush=True)
    print(json.dumps({"seconds": round(time.monotonic() - started, 1)}))


if __name__ == "__main__":
    main()
