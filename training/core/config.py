"""One frozen config per algorithm; stored as JSON on the run row (`dataclasses.asdict`)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class RewardModelConfig:
    """Defaults chosen for tens to thousands of rankings by `benchmarks/label_efficiency.py` (docs,
    "Reward models from few rankings"): heads on a frozen trunk's mean features of its first third,
    an ensemble of 5, many epochs with early stopping. InstructGPT's settings, tuned for 50,000
    comparisons, are in brackets, and `RewardModelConfig.instructgpt()` gives them all."""

    lr: float = 9e-6
    """Peak learning rate of a trained trunk, reached after warm-up [InstructGPT: 9e-6]."""
    final_lr: float = 3e-6
    """Learning rate at the end of the cosine decay; heads decay by the same share, final_lr / lr."""
    warmup_ratio: float = 0.03
    """Share of the optimiser steps spent warming up linearly from 0."""
    epochs: int = 30
    """Passes over the training rankings, fewer when `patience` stops early [InstructGPT: 1]."""
    min_steps: int = 0
    """At least this many optimiser steps, in more epochs when the rankings are few."""
    patience: int = 5
    """Epochs without a lower held-out loss before training stops, keeping the best epoch's weights;
    0 trains every epoch and keeps the last [0]."""
    head_lr: float | None = 3e-3
    """Peak learning rate of the head(s); None means lr. A fresh head learns faster than the trunk [None]."""
    heads: int = 5
    """Scalar heads on the one trunk; more than 1 is an ensemble, each head on its own bootstrap of
    the rankings: the score is their mean, their spread the reward model's uncertainty [1]."""
    labeler_weights: bool = False
    """Weigh each ranking by its labeler's reliability: agreement with the others and gold accuracy,
    2·share − 1 relative to the team's best, shrunk toward 1 while the evidence is thin
    (labeling.statistics.reliability_weights)."""
    pooling: str = "mean"
    """What the heads read of a completion: the trunk's output at its last real token ('last') or its
    mean over the completion's tokens ('mean') [last]."""
    depth: float = 0.333
    """Share of the trunk's layers whose output the heads read: 1 is the last layer, 1/3 the output
    of the first third [1]."""
    standardise: bool = False
    """The heads read each feature standardised by its mean and std over the training completions
    (fixed by a version's first training; saved with the heads). On the benchmark's noisy labels it
    did not help (docs/benchmarks.md), so it is off."""
    trunk: str = "frozen"
    """'full' trains every weight; 'frozen' trains the heads only, on the trunk's output computed
    once per completion (fast, and steady on few rankings); 'lora' trains the heads and low-rank
    adapters on the trunk's linear layers (with `lr` near 1e-4), merged into the trunk when saved
    [full]."""
    lora_rank: int = 8
    """Rank of the adapters when `trunk` is 'lora'."""
    batch_prompts: int = 8
    """Ranked prompts per optimiser step; each brings its K completions and C(K,2) pairs."""
    max_length: int = 512
    """Tokens per prompt + completion + EOS; longer ones lose the start of the prompt."""
    weight_decay: float = 0.1
    """AdamW weight decay [0]."""
    max_grad_norm: float = 1.0
    """Gradient-norm clipping."""
    tie_mode: str = "drop"
    """'drop': pairs within a tie group are left out; 'half': they count with target 0.5."""
    head_init_std: float | None = None
    """Std of the scalar head's initial weights; None means 1/sqrt(hidden_size + 1)."""
    heldout_fraction: float = 0.1
    """Share of prompts (never of pairs) kept out of training to measure accuracy."""
    seed: int = 0
    """Seeds the head's initialisation and the order of the batches."""
    dtype: str = "auto"
    """'auto' follows the worker's TRAINING_DTYPE (a trained trunk in float32 under autocast, a frozen
    one and every scorer in the compute dtype, heads in float32); 'float32' or 'bfloat16' forces
    the weights and the forward pass of trunk and heads into that dtype."""

    @classmethod
    def instructgpt(cls, **overrides) -> "RewardModelConfig":
        """InstructGPT's recipe (the defaults before the label-efficiency benchmark): the whole
        trunk trained for 1 epoch, one head on the last token of the last layer."""
        recipe = {"trunk": "full", "pooling": "last", "depth": 1.0, "heads": 1, "epochs": 1, "patience": 0,
                  "head_lr": None, "weight_decay": 0.0}  # fmt: skip
        return cls(**{**recipe, **overrides})

    def __post_init__(self) -> None:
        choices = {"pooling": ("last", "mean"), "trunk": ("full", "frozen", "lora"), "tie_mode": ("drop", "half"),
                   "dtype": ("auto", "float32", "bfloat16")}  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, not {getattr(self, name)!r}.")
        if not 0 < self.depth <= 1:
            raise ValueError(f"depth is a share of the trunk's layers, in (0, 1], not {self.depth!r}.")
        if self.heads < 1 or self.epochs < 1:
            raise ValueError("heads and epochs must be at least 1.")


@dataclass(frozen=True)
class PPOConfig:
    steps: int = 20
    """PPO steps in a round; each samples a fresh rollout batch."""
    batch_prompts: int = 8
    """Prompts per rollout batch (one completion each)."""
    minibatch_size: int = 4
    """Sequences per gradient step within a rollout batch."""
    ppo_epochs: int = 4
    """Passes over each rollout batch [4]."""
    lr: float = 3e-6
    """Policy learning rate [1e-6 to 1e-5]."""
    critic_lr: float = 9e-6
    """Value-model learning rate [~9e-6]."""
    max_grad_norm: float = 1.0
    """Gradient-norm clipping, for policy and critic each."""
    clip_range: float = 0.2
    """ε of the clipped ratio [0.2]."""
    clip_range_value: float = 0.2
    """How far a value may move from its rollout value before its loss is clipped [0.2]."""
    vf_coef: float = 0.1
    """Weight of the value loss [0.1]."""
    gamma: float = 1.0
    """Discount [1: the episode is one completion]."""
    lam: float = 0.95
    """GAE λ [0.95]."""
    whiten_advantages: bool = True
    """Advantages to zero mean, unit variance over valid tokens."""
    kl_coef: float = 0.05
    """β of the per-token KL penalty when fixed [0.02 to 0.05]; the starting β when adaptive."""
    adaptive_kl: bool = False
    """Adapt β towards kl_target (Ziegler et al.) instead of keeping it fixed."""
    kl_target: float = 6.0
    """Target KL per completion, in nats, for the adaptive controller [6]."""
    kl_horizon: int = 10_000
    """Episodes over which the adaptive controller closes the gap [10k]."""
    kl_estimator: str = "k1"
    """'k1' (log-ratio) or 'k3' ((r − 1) − log r) for the per-token penalty."""
    reward_clip: float = 5.0
    """The normalised RM score is clipped to ±this [5 to 10]."""
    missing_eos_penalty: float = -1.0
    """Added to the score of a completion cut by max_new_tokens without EOS [-1]."""
    temperature: float = 0.7
    """Sampling temperature; log-probs are recomputed with logits divided by it [0.7 to 1]."""
    top_p: float = 1.0
    """Nucleus sampling mass for rollouts [1: off]."""
    max_new_tokens: int = 64
    """Longest rollout completion."""
    max_prompt_length: int = 256
    """Longer prompts keep their end."""
    share_prompt_prefix: bool = True
    """Forward the tokens every prompt of a batch starts with (a chat template's system turn) once and
    share their keys and values: the same figures up to float rounding, less compute. Off when
    training on several processes."""
    lora_rank: int = 0
    """0 trains every weight; > 0 trains LoRA adapters and uses the base with them off as reference."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward instead of keeping them: about a third
    more compute for activations of one layer at a time (what lets a 1-8B model train on one GPU)."""
    advantage_estimator: str = "gae"
    """'gae': a critic (initialised from the RM) and GAE, PPO as in InstructGPT; 'rloo': no critic,
    each sample's baseline is the mean score of the other samples of its prompt (Ahmadian et al.
    2024); 'group_norm': GRPO's, the group's mean and std."""
    samples_per_prompt: int = 1
    """Completions sampled per prompt in a rollout batch: 1 for 'gae', at least 2 for a group baseline."""
    kl_in_reward: bool = True
    """True: −β·KL (the `kl_estimator`) is a per-token penalty in the reward; False: β·k3 KL is a
    term of the loss (GRPO's way), the reward is the score alone. PPO always puts it in the reward."""
    seed: int = 0
    """Seeds sampling, prompt order and minibatch order."""

    def __post_init__(self) -> None:
        choices = {"advantage_estimator": ("gae", "rloo", "group_norm"), "kl_estimator": ("k1", "k3")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, not {getattr(self, name)!r}.")
        if self.advantage_estimator == "gae" and self.samples_per_prompt != 1:
            raise ValueError("samples_per_prompt is 1 with the 'gae' estimator; a group baseline needs 'rloo'.")
        if self.advantage_estimator != "gae" and self.samples_per_prompt < 2:
            raise ValueError(f"The {self.advantage_estimator!r} baseline needs samples_per_prompt of at least 2.")
        if self.advantage_estimator == "gae" and not self.kl_in_reward:
            raise ValueError("PPO with a critic puts the KL penalty in the reward: kl_in_reward must be true.")
        if self.steps < 1 or self.batch_prompts < 1 or self.minibatch_size < 1 or self.ppo_epochs < 1:
            raise ValueError("steps, batch_prompts, minibatch_size and ppo_epochs must be at least 1.")

    @classmethod
    def rloo(cls, **overrides) -> "PPOConfig":
        """Critic-free RL with k = 4 samples per prompt and a leave-one-out baseline: one update per
        rollout batch (the ratio is then 1 and the clip idle, REINFORCE with a baseline), as in
        TRL's RLOOTrainer and the RLOO paper. 16 steps of 16 samples at lr 2e-5 fit a round in 10
        minutes on 2 CPU cores with the bundled model. No missing-EOS penalty, as TRL's RLOO by
        default: with it the policy learned to stop early, and with 8 steps a preference the base
        rarely meets did not move it (docs/benchmarks.md, "Rounds that compound")."""
        recipe = {"advantage_estimator": "rloo", "samples_per_prompt": 4, "batch_prompts": 4, "ppo_epochs": 1,
                  "minibatch_size": 16, "lr": 2e-5, "steps": 16, "missing_eos_penalty": 0.0}  # fmt: skip
        return cls(**{**recipe, **overrides})


@dataclass(frozen=True)
class SFTConfig:
    """Supervised fine-tuning on demonstrations: the loss on the answer tokens only (and the EOS
    after each), the prompt formatted with the chat template as in sampling."""

    lr: float = 2e-5
    """Peak learning rate (full fine-tuning; near 2e-4 with LoRA)."""
    epochs: int = 3
    """Passes over the demonstrations, fewer when `patience` stops early."""
    patience: int = 1
    """Epochs without a lower held-out loss before stopping, keeping the best epoch's weights; 0 off."""
    batch_prompts: int = 4
    """Demonstrations per optimiser step."""
    warmup_ratio: float = 0.1
    """Share of the steps warming up linearly; then a cosine decay to 10% of lr."""
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 512
    """Tokens of prompt + answer + EOS; longer answers are cut, then prompts lose their start."""
    heldout_fraction: float = 0.1
    """Share of prompts (never of answers) kept out of training for early stopping."""
    include_top_ranked: bool = False
    """Also train on the completion ranked first (alone) of each training ranking: rejection-sampling
    fine-tuning on the policy's own best samples."""
    lora_rank: int = 0
    """0 trains every weight; > 0 trains LoRA adapters, merged into the weights when saved."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward instead of keeping them: about a third
    more compute for activations of one layer at a time (what lets a 1-8B model train on one GPU)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_prompts < 1:
            raise ValueError("epochs and batch_prompts must be at least 1.")


@dataclass(frozen=True)
class DPOConfig:
    """Direct preference optimisation from K-way rankings, no reward model (Rafailov et al. 2023):
    every completion forwarded once through the policy per step and once through the frozen
    reference in all, every C(K,2) pair's loss −log σ(β·Δ) formed from the K log-ratios."""

    beta: float = 0.1
    """β: the KL strength; smaller lets the policy move further from the reference [0.1]."""
    lr: float = 1e-5
    """Peak learning rate (full fine-tuning; near 1e-4 with LoRA)."""
    epochs: int = 2
    """Passes over the rankings, fewer when `patience` stops early."""
    patience: int = 0
    """Epochs without a lower held-out loss before stopping, keeping the best epoch's weights; 0 off."""
    batch_prompts: int = 4
    """Ranked prompts per optimiser step; each brings its K completions and C(K,2) pairs."""
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 512
    tie_mode: str = "drop"
    """'drop': pairs within a tie group are left out; 'half': they count with target 0.5."""
    heldout_fraction: float = 0.1
    """Share of prompts kept out of training: the implicit reward's accuracy on them is logged."""
    labeler_weights: bool = False
    """Weigh each ranking by its labeler's reliability, as the reward model can."""
    lora_rank: int = 0
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward instead of keeping them: about a third
    more compute for activations of one layer at a time (what lets a 1-8B model train on one GPU)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.tie_mode not in ("drop", "half"):
            raise ValueError(f"tie_mode must be one of 'drop', 'half', not {self.tie_mode!r}.")
        if self.beta <= 0 or self.epochs < 1 or self.batch_prompts < 1:
            raise ValueError("beta must be positive, epochs and batch_prompts at least 1.")


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.7
    """Softmax temperature (> 0); PPO recomputes log-probs with logits divided by it."""
    top_p: float = 1.0
    """Nucleus sampling mass; 1.0 keeps the whole distribution."""
    top_k: int = 0
    """Keep only the k likeliest tokens; 0 turns it off."""
    max_new_tokens: int = 128
    """A completion that reaches this length without EOS is cut and marked finish_reason 'length'."""
    seed: int = 0
    """The same seed, prompts and settings give the same completions."""
    max_batch_tokens: int = 16_384
    """Memory budget of one generate call: sequences × (longest prompt + max_new_tokens)."""


@dataclass(frozen=True)
class JudgeConfig:
    """An AI judge as a judging run found it (labeling.models.Judge): what made its rankings."""

    judge: str
    """Which judge, as rankings record it: 'local:bundled', 'endpoint:MODEL@HOST'."""
    backend: str
    """'local' (a model on the generation worker) or 'endpoint' (OpenAI-compatible chat completions)."""
    model: str
    """Local: the model store reference or hub id loaded; endpoint: the model name sent."""
    instructions: str
    """The judging prompt followed by the project's guidelines: the judge's system turn."""
    prompt_version: str
    """A digest of `instructions`."""
    base_url: str = ""
    api_key_env: str = ""
    """The name of the worker's environment variable that holds the key: the key is never stored."""
    max_calls: int = 2000
    """Endpoint: the run fails once this many calls are spent."""
    batch_size: int = 8
    """Local: judge questions per forward pass."""
