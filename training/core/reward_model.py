"""A Bradley–Terry reward model: the policy's backbone plus scalar heads read at the last real
token (the EOS appended to every completion), saved and loaded, and scoring with it. Training is in
`reward_training`."""

import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from labeling.conversations import Chat
from training.core.config import RewardModelConfig
from training.core.data import RankedPrompt, RewardBatch, collate
from training.core.devices import CPU, DTYPES, Placement
from training.core.loading import prepare_tokenizer, resolve
from training.core.prefix import shared_prefix_inputs

Log = Callable[[dict], None]


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real token, for left or right padding. (B, T) -> (B,)"""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)  # (T,)
    return (attention_mask * positions).argmax(dim=1)


class RewardModel(nn.Module):
    """A trunk and E scalar heads on a completion's features: the trunk's output at its last real
    token ('last'), or its mean over the completion's tokens ('mean'), of the last layer or of
    `layer` (an index into the hidden states, 0 = embeddings). With E > 1 the heads are an ensemble
    (each trained on its own bootstrap of the rankings): the score is their mean, their spread the
    model's uncertainty."""

    def __init__(
        self,
        backbone: PreTrainedModel,
        head_init_std: float | None = None,
        heads: int = 1,
        pooling: str = "last",
        layer: int | None = None,
    ):
        super().__init__()
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', not {pooling!r}")
        self.backbone, self.pooling, self.layer = backbone, pooling, layer
        self.trunk_layers = backbone.config.num_hidden_layers  # of the policy's trunk, before any were dropped
        hidden = backbone.config.hidden_size
        self.head = nn.Linear(hidden, heads)
        nn.init.normal_(self.head.weight, std=head_init_std or 1 / math.sqrt(hidden + 1))
        nn.init.zeros_(self.head.bias)
        self.register_buffer("offset", torch.zeros(()))  # normalisation: added to every score
        # Per-feature standardisation before the heads (identity until set_standardisation).
        self.register_buffer("feature_shift", torch.zeros(hidden))  # (H,)
        self.register_buffer("feature_scale", torch.ones(hidden))  # (H,)

    def _hidden(self, **inputs) -> torch.Tensor:
        """The trunk's output at the layer the heads read. -> (B, T, H)"""
        out = self.backbone(**inputs, output_hidden_states=self.layer is not None)
        return out.last_hidden_state if self.layer is None else out.hidden_states[self.layer]

    def last_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The trunk's output at each row's last real token; the rows' common start is forwarded once.
        Whole sequences carry no prompt/completion boundary, so 'mean' pooling goes through batches.
        (B, T), (B, T) -> (B, H)"""
        if self.pooling != "last":
            raise ValueError("A mean-pooling reward model scores collated batches (forward_batch, score_pairs).")
        keep_last = input_ids.shape[1] - int(attention_mask.sum(dim=1).min()) + 1  # every row's last real token
        inputs = shared_prefix_inputs(self.backbone, input_ids, attention_mask, keep_last)
        hidden = self._hidden(**inputs)  # (B, T - S, H)
        last = last_token_index(inputs["attention_mask"][:, -hidden.shape[1] :])  # (B,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, H)

    def features_batch(self, batch: RewardBatch) -> torch.Tensor:
        """Each completion's features (see the class); each prompt is forwarded once and its keys and
        values are shared by its completions. -> (N, H)"""
        prompt_positions = (batch.prompt_mask.cumsum(dim=1) - 1).clamp(min=0)  # (G, P)
        cache = self.backbone(
            input_ids=batch.prompt_ids, attention_mask=batch.prompt_mask, position_ids=prompt_positions, use_cache=True
        ).past_key_values
        cache.batch_select_indices(batch.group)  # (G, ...) -> (N, ...): one copy per completion
        prompt_lengths = batch.prompt_mask.sum(dim=1)[batch.group]  # (N,)
        steps = torch.arange(batch.completion_ids.shape[1], device=prompt_lengths.device)  # (C,)
        hidden = self._hidden(
            input_ids=batch.completion_ids,
            attention_mask=torch.cat([batch.prompt_mask[batch.group], batch.completion_mask], dim=1),  # (N, P + C)
            position_ids=prompt_lengths[:, None] + steps,  # (N, C)
            past_key_values=cache,
        )  # (N, C, H)
        if self.pooling == "mean":
            weights = batch.completion_mask[..., None].to(hidden.dtype)  # (N, C, 1)
            return (hidden * weights).sum(dim=1) / weights.sum(dim=1)  # (N, H)
        last = last_token_index(batch.completion_mask)  # (N,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (N, H)

    @property
    def standardised(self) -> bool:
        return bool((self.feature_shift != 0).any() or (self.feature_scale != 1).any())

    def set_standardisation(self, features: torch.Tensor) -> None:
        """The heads read each feature minus its mean over `features`, divided by its std: the
        trunk's features differ in scale by orders of magnitude, and weight decay then treats them
        alike. (N, H)"""
        self.feature_shift.copy_(features.mean(dim=0))
        self.feature_scale.copy_(
            features.std(dim=0).clamp(min=1e-6) if len(features) > 1 else torch.ones_like(self.feature_scale)
        )

    def members(self, hidden: torch.Tensor) -> torch.Tensor:
        """Each head's raw score of trunk outputs. (..., H) -> (..., E)"""
        standard = (hidden.to(self.feature_shift.dtype) - self.feature_shift) / self.feature_scale  # (..., H)
        return self.head(standard.to(self.head.weight.dtype))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Raw scores (the heads' mean), before normalisation. (B, T), (B, T) -> (B,)"""
        return self.members(self.last_hidden(input_ids, attention_mask)).mean(dim=-1)

    def forward_batch(self, batch: RewardBatch) -> torch.Tensor:
        """Raw scores (the heads' mean) of a collated batch. -> (N,)"""
        return self.members(self.features_batch(batch)).mean(dim=-1)

    def token_values(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, last: int, share_prefix: bool = False
    ) -> torch.Tensor:
        """The heads' mean read at the `last` positions before each of the final `last` tokens: the
        value of the state in which each of them was chosen (a critic's use); `share_prefix` forwards
        the rows' common start once. (B, T), (B, T) -> (B, last)"""
        inputs = shared_prefix_inputs(self.backbone, input_ids, attention_mask, last + 1 if share_prefix else None)
        hidden = self._hidden(**inputs)  # (B, T - S, H), at the layer the heads read
        before = hidden[:, -(last + 1) : -1]  # (B, last, H)
        return self.members(before).mean(dim=-1)  # (B, last)

    def score(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised scores: reference completions average 0. (B, T) -> (B,)"""
        return self.forward(input_ids, attention_mask) + self.offset


def read_layer(config: RewardModelConfig, layers: int) -> int | None:
    """The hidden state the heads read for `config.depth` of a trunk of `layers` layers; None is the last."""
    return None if config.depth >= 1 else round(config.depth * layers)


def weight_dtypes(dtype: str, placement: Placement, trainable: bool) -> tuple[torch.dtype, torch.dtype]:
    """(trunk, head) weight dtypes: an explicit `dtype` for both (the config's "float32" or
    "bfloat16"); "auto" follows the placement, a trained trunk in float32 (under autocast), a frozen
    one in the compute dtype, and the small head always in float32."""
    if dtype != "auto":
        return DTYPES[dtype], DTYPES[dtype]
    return placement.weights_dtype(trainable), torch.float32


def _placed(model: RewardModel, head_dtype: torch.dtype, placement: Placement, trainable: bool) -> RewardModel:
    model.head.to(head_dtype)
    model = model.to(placement.device)
    return model if trainable else model.requires_grad_(False).eval()


def new_reward_model(
    policy_reference: str, store: Path, config: RewardModelConfig, placement: Placement = CPU
) -> tuple[RewardModel, PreTrainedTokenizerBase]:
    """A fresh head on the policy's trunk (its LM head is not loaded), without the layers above the
    one the heads read: they would change no score, and cost two thirds of every forward at depth 1/3.
    On `placement`'s device, the trunk in the compute dtype when `config.trunk` freezes it."""
    source = resolve(policy_reference, store)
    torch.manual_seed(config.seed)
    trunk_dtype, head_dtype = weight_dtypes(config.dtype, placement, trainable=config.trunk != "frozen")
    backbone = AutoModel.from_pretrained(source, dtype=trunk_dtype)
    layer = read_layer(config, backbone.config.num_hidden_layers)
    model = drop_unread_layers(RewardModel(backbone, config.head_init_std, config.heads, config.pooling, layer))
    return _placed(model, head_dtype, placement, trainable=True), prepare_tokenizer(
        AutoTokenizer.from_pretrained(source)
    )


def save_reward_model(model: RewardModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """Backbone (safetensors + config), head, normalisation offset and tokenizer into `folder`."""
    model.backbone.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    head = {**model.head.state_dict(), "feature_shift": model.feature_shift, "feature_scale": model.feature_scale}
    save_file({k: v.contiguous() for k, v in head.items()}, folder / "reward_head.safetensors")
    settings = {"offset": float(model.offset), "pooling": model.pooling, "layer": model.layer,
                "trunk_layers": model.trunk_layers}  # fmt: skip
    (folder / "reward.json").write_text(json.dumps(settings))


def drop_unread_layers(model: RewardModel) -> RewardModel:
    """Removes the trunk's layers above the one the heads read: they change no score or value and
    get no gradient, and take most of a forward when the heads read a shallow layer. One layer above
    it stays, because transformers hands back the last layer's output through the final norm.
    `trunk_layers` keeps the count it had. Trunks without a `layers` list are left whole."""
    layers = getattr(model.backbone, "layers", None)
    if model.layer is None or layers is None or model.layer + 1 >= len(layers):
        return model
    model.backbone.layers = layers[: model.layer + 1]
    model.backbone.config.num_hidden_layers = model.layer + 1
    return model


def load_reward_model(
    folder: Path, placement: Placement = CPU, trunk: str | None = None, dtype: str = "auto"
) -> tuple[RewardModel, PreTrainedTokenizerBase]:
    """A saved reward model on `placement`'s device, without trunk layers its heads do not read
    (versions saved before they were dropped still have them). With `trunk` None it is a frozen
    scorer; with a trunk mode ("full", "lora", "frozen") it is to be trained so, its trunk in float32
    unless frozen. `dtype` as in `weight_dtypes`."""
    trunk_dtype, head_dtype = weight_dtypes(dtype, placement, trainable=trunk not in (None, "frozen"))
    backbone = AutoModel.from_pretrained(folder, dtype=trunk_dtype)
    head = load_file(folder / "reward_head.safetensors")
    settings = json.loads((folder / "reward.json").read_text())
    model = RewardModel(backbone, None, head["weight"].shape[0], settings.get("pooling", "last"), settings.get("layer"))
    model.feature_shift.copy_(head.pop("feature_shift", model.feature_shift))  # absent before standardisation
    model.feature_scale.copy_(head.pop("feature_scale", model.feature_scale))
    model.head.load_state_dict(head)
    model.offset.fill_(settings["offset"])
    model.trunk_layers = settings.get("trunk_layers", model.trunk_layers)  # absent before layers were dropped
    model = _placed(drop_unread_layers(model), head_dtype, placement, trainable=trunk is not None)
    return model, prepare_tokenizer(AutoTokenizer.from_pretrained(folder))


@torch.no_grad()
def score_pairs(
    model: RewardModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: list[tuple[Chat, str]],
    max_length: int,
    normalised: bool = True,
    batch_size: int = 16,
) -> torch.Tensor:
    """Scores of (prompt, completion) pairs, encoded exactly as in training; `normalised` adds the
    offset (reference completions average 0). -> (len(pairs),)"""
    device = model.head.weight.device
    model.eval()
    out = []
    for start in range(0, len(pairs), batch_size):
        items = [RankedPrompt(p, [c], [[0]]) for p, c in pairs[start : start + batch_size]]
        raw = model.forward_batch(collate(items, tokenizer, max_length, "drop").to(device))  # (B,)
        out.append((raw + model.offset if normalised else raw).float().cpu())
    return torch.cat(out)


def reward_model_scorer(
    model: RewardModel, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> Callable[[list[str], list[str]], torch.Tensor]:
    """(prompts, completions) -> their normalised scores (B,): how PPO calls the reward model."""
    return lambda prompts, completions: score_pairs(
        model, tokenizer, list(zip(prompts, completions, strict=True)), max_length
    )


def score_groups(
    model: RewardModel, tokenizer: PreTrainedTokenizerBase, groups: list[tuple[Chat, list[str]]], max_length: int
) -> list[list[float]]:
    """The normalised scores of each prompt's completions, in the order given; completions of
    several prompts share a batch."""
    flat = [(prompt, completion) for prompt, completions in groups for completion in completions]
    scores = score_pairs(model, tokenizer, flat, max_length).tolist() if flat else []
    out, start = [], 0
    for _, completions in groups:
        out.append(scores[start : start + len(completions)])
        start += len(completions)
    return out


def normalise(
    model: RewardModel, tokenizer: PreTrainedTokenizerBase, references: list[tuple[Chat, str]], max_length: int
) -> float:
    """Sets the offset so that the reference completions score 0 on average; returns it."""
    raw = score_pairs(model, tokenizer, references, max_length, normalised=False) if references else None
    offset = -float(raw.mean()) if raw is not None else 0.0
    model.offset.fill_(offset)
    return offset
