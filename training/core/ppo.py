"""RL on a language model: the prompt is the state, the completion the action (a bandit at the
RL level, with a token-level KL penalty inside it). One loop, two ways to get advantages: PPO's, a
critic and GAE, as in InstructGPT; or critic-free, from k samples per prompt scored against each
other (RLOO's leave-one-out baseline, or GRPO's group normalisation), with the same clipped ratio."""

import copy
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from labeling.conversations import Chat
from training.core.advantages import compute_gae, group_advantages, masked_mean, masked_var, masked_whiten
from training.core.config import PPOConfig, SamplingConfig
from training.core.devices import CPU, Placement
from training.core.distributed import current
from training.core.generation import eos_ids, format_prompt, generate_kwargs
from training.core.lora import merged, with_lora
from training.core.losses import clipped_policy_loss, clipped_value_loss, kl_penalty
from training.core.packed import pack_linears, packed_linears
from training.core.prefix import shared_prefix_inputs
from training.core.recompute import recompute_layers
from training.core.reward_model import RewardModel

Scorer = Callable[[list[str], list[str]], torch.Tensor]  # (prompts, completions) -> (B,) scores
Log = Callable[[dict], None]


@dataclass
class Rollout:
    input_ids: torch.Tensor  # (B, P + T) left-padded prompt, then the response padded after EOS
    attention_mask: torch.Tensor  # (B, P + T) 1 on prompt tokens and response tokens up to EOS
    response: torch.Tensor  # (B, T)
    response_mask: torch.Tensor  # (B, T) 1 up to and including EOS
    logprobs: torch.Tensor  # (B, T) of the sampling policy, logits / temperature
    ref_logprobs: torch.Tensor  # (B, T)
    values: torch.Tensor  # (B, T)
    scores: torch.Tensor  # (B,) RM score after clipping and the missing-EOS penalty
    has_eos: torch.Tensor  # (B,) bool
    seconds_generating: float


def response_mask_of(response: torch.Tensor, eos_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """1 on tokens up to and including the first EOS, and whether there was one. (B, T) -> (B, T), (B,)"""
    is_eos = torch.isin(response, torch.tensor(eos_ids, device=response.device)).long()  # (B, T)
    ended_before = (is_eos.cumsum(dim=1) - is_eos) > 0  # (B, T) an EOS came earlier
    return (~ended_before).long(), is_eos.any(dim=1)


def last_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last 1 in a left-aligned mask. (B, T) -> (B,)"""
    return (mask.sum(dim=1) - 1).clamp(min=0).long()


def token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """−β·KL at every response token, plus the score on the last real token (the EOS itself).

    scores: (B,); kl, mask: (B, T) -> (B, T)
    """
    rewards = -beta * kl * mask  # (B, T)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last_index(mask)] += scores
    return rewards


def adaptive_beta(beta: float, kl: float, episodes: int, config: PPOConfig) -> float:
    """Ziegler et al.'s proportional controller: β grows when KL is above target, shrinks below."""
    error = max(-0.2, min(0.2, kl / config.kl_target - 1))
    return beta * (1 + error * episodes / config.kl_horizon)


def response_logprobs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response: torch.Tensor,
    temperature: float,
    share_prefix: bool = False,
    with_entropy: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and entropy, unless `with_entropy` is False) of the response tokens with
    logits / temperature, computing logits only for the response positions; `share_prefix` forwards
    the prompts' common start once. (B, P + T), (B, P + T), (B, T) -> (B, T), (B, T) or None"""
    steps = response.shape[1]
    inputs = shared_prefix_inputs(
        model, input_ids, attention_mask, steps + 1 if share_prefix else None, logits_to_keep=1
    )  # fmt: skip
    logits = model(**inputs, logits_to_keep=steps + 1).logits[:, :-1]  # (B, T, V): P - 1 + t predicts token t
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)  # (B, T, V)
    picked = logp.gather(-1, response.unsqueeze(-1)).squeeze(-1)  # (B, T)
    if not with_entropy:
        return picked, None
    with torch.no_grad():  # logged, not trained on: no graph over (B, T, V)
        entropy = -(logp.exp() * logp).sum(dim=-1)  # (B, T)
    return picked, entropy


class PPOTrainer:
    """One readable loop (`step`) over rollout batches; models are prepared with accelerate.

    `critic` is the value model with the 'gae' estimator, None with a group baseline. `reference`
    is the model KL is measured against when it is not the policy's starting weights (an SFT
    anchor the policy has since moved from)."""

    def __init__(
        self,
        policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        critic: RewardModel | None,
        score: Scorer,
        config: PPOConfig,
        accelerator: Accelerator | None = None,
        reference: PreTrainedModel | None = None,
        placement: Placement = CPU,
    ):
        if (critic is None) != (config.advantage_estimator != "gae"):
            raise ValueError("A critic goes with the 'gae' estimator, and only with it.")
        self.config, self.tokenizer, self.score = config, tokenizer, score
        if accelerator is None and placement.device.type == "cuda":
            torch.cuda.set_device(placement.device)  # accelerate takes the current GPU
        # Precision is the placement's autocast around each forward, not accelerate's: its state
        # is one per process, and a process may carry out runs placed differently (--sync, tests).
        self.accelerator = accelerator or Accelerator(cpu=placement.device.type == "cpu")
        self.autocast = placement.autocast
        self.ranks = current()  # several processes: each rolls out its share of every batch's prompts
        if config.batch_prompts % self.ranks.count:
            raise ValueError(f"batch_prompts ({config.batch_prompts}) must be a multiple of the "
                             f"{self.ranks.count} training processes, each taking an equal share.")  # fmt: skip
        self.rows = config.batch_prompts // self.ranks.count * config.samples_per_prompt  # sequences a rank rolls out
        frozen = Placement(self.accelerator.device, placement.dtype)
        if reference is not None:
            self.reference = frozen.frozen(reference)
            pack_linears(self.reference, self.rows)
        elif config.lora_rank == 0:
            self.reference = frozen.frozen(copy.deepcopy(policy))
            pack_linears(self.reference, self.rows)  # frozen for good
        else:
            self.reference = None  # the same weights with the adapter disabled
        if config.lora_rank > 0:
            policy = with_lora(policy, config.lora_rank)
        if config.gradient_checkpointing:
            recompute_layers(policy)
            if critic is not None:
                recompute_layers(critic)
        trainable = [p for p in policy.parameters() if p.requires_grad]
        policy_opt = torch.optim.AdamW(trainable, lr=config.lr, fused=True)
        if critic is None:
            self.policy, self.policy_opt = self.accelerator.prepare(policy, policy_opt)
            self.critic = self.critic_opt = None
        else:
            # The critic is not wrapped in DDP: its forward (token_values) is not the wrapper's, so
            # its gradients are averaged over the ranks by hand after each backward.
            self.critic = critic.to(self.accelerator.device).eval()
            critic_opt = torch.optim.AdamW(self.critic.parameters(), lr=config.critic_lr, fused=True)
            self.policy, self.policy_opt, self.critic_opt = self.accelerator.prepare(policy, policy_opt, critic_opt)
            self.ranks.broadcast_parameters(list(self.critic.parameters()))
        self.policy.eval()  # dropout off: sampling and recomputation must see the same model
        self.beta = config.kl_coef
        # rows per minibatch on this rank: the ranks' minibatches together make config.minibatch_size
        self.minibatch_rows = max(1, config.minibatch_size // self.ranks.count)
        # several processes wrap the models (DDP), which expects one forward per backward
        # and a prefix cache cannot be recomputed in the backward
        self.share_prefix = (config.share_prompt_prefix and self.accelerator.num_processes == 1
                             and not config.gradient_checkpointing)  # fmt: skip
        self.eos_ids = eos_ids(self.unwrapped_policy, tokenizer)
        self.sampling = SamplingConfig(
            temperature=config.temperature, top_p=config.top_p, top_k=0, max_new_tokens=config.max_new_tokens
        )
        self.generator = torch.Generator().manual_seed(config.seed)

    @property
    def unwrapped_policy(self) -> PreTrainedModel:
        return self.accelerator.unwrap_model(self.policy)

    def _reference_context(self) -> AbstractContextManager:
        return self.unwrapped_policy.disable_adapter() if self.reference is None else nullcontext()

    @torch.no_grad()
    def rollout(self, prompts: list[Chat], with_values: bool = True) -> Rollout:
        """Steps 1 to 3 for one sequence per entry of `prompts`, and the critic's values unless
        `with_values` is False or there is no critic (then they are zeros)."""
        with self.autocast():
            return self._rollout(prompts, with_values)

    def _rollout(self, prompts: list[Chat], with_values: bool) -> Rollout:
        config, tokenizer, device = self.config, self.tokenizer, self.accelerator.device
        # 1) rollout: sample one completion per prompt, cut after the first EOS
        texts = [format_prompt(tokenizer, p) for p in prompts]
        query = tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=config.max_prompt_length,
            add_special_tokens=not tokenizer.chat_template,
        ).to(device)  # fmt: skip
        started = time.perf_counter()
        with packed_linears(self.unwrapped_policy, len(texts)):
            generated = self.unwrapped_policy.generate(
                **query, **generate_kwargs(self.sampling, tokenizer, self.eos_ids), output_logits=True,
                return_dict_in_generate=True,
            )  # fmt: skip
        seconds_generating = time.perf_counter() - started
        response = generated.sequences[:, query["input_ids"].shape[1] :]  # (B, T)
        response_mask, has_eos = response_mask_of(response, self.eos_ids)
        response = torch.where(response_mask.bool(), response, tokenizer.pad_token_id)
        input_ids = torch.cat([query["input_ids"], response], dim=1)  # (B, P + T)
        attention_mask = torch.cat([query["attention_mask"], response_mask], dim=1)  # (B, P + T)
        # 2) score with the reward model (normalised), clipped; a completion without EOS is penalised
        completions = [
            tokenizer.decode(r[m.bool()], skip_special_tokens=True).strip()
            for r, m in zip(response, response_mask, strict=True)
        ]
        scores = self.score(prompts, completions).to(device).clamp(-config.reward_clip, config.reward_clip)
        scores = scores + (~has_eos).float() * config.missing_eos_penalty
        # 3) log-probs of the sampler (its raw logits / temperature: no second policy forward) and of
        #    the reference, once per rollout; values from the critic
        logits = torch.stack(generated.logits, dim=1).float()  # (B, T, V)
        logprobs = torch.log_softmax(logits / config.temperature, dim=-1).gather(-1, response.unsqueeze(-1)).squeeze(-1)
        with self._reference_context():
            reference = self.reference if self.reference is not None else self.policy
            ref_logprobs, _ = response_logprobs(
                reference, input_ids, attention_mask, response, config.temperature, self.share_prefix,
                with_entropy=False,
            )  # fmt: skip
        values = (
            self._values(input_ids, attention_mask, response.shape[1])
            if with_values and self.critic is not None
            else torch.zeros_like(logprobs)
        )
        return Rollout(
            input_ids,
            attention_mask,
            response,
            response_mask,
            logprobs,
            ref_logprobs,
            values.float() * response_mask,
            scores,
            has_eos,
            seconds_generating,
        )

    def step(self, prompts: list[Chat]) -> dict:
        """One step on a batch of prompts, each sampled `samples_per_prompt` times: steps 1 to 3 in
        `rollout`, then 4 to 6 here. Returns the step's figures."""
        config = self.config
        started = time.perf_counter()
        k = config.samples_per_prompt
        rows = [prompt for prompt in prompts for _ in range(k)]  # a prompt's k samples side by side
        single_update = self._one_update_per_rollout(len(rows))
        batch = self.rollout(rows, with_values=not single_update)
        mask = batch.response_mask.float()  # (B, T)
        values = None
        if single_update:
            values = self._values(batch.input_ids, batch.attention_mask, batch.response.shape[1])  # (B, T), grad
            batch.values = values.detach().float() * mask
        rolled_out = time.perf_counter()
        # 4) KL against the reference: per token in the reward, or (kl_in_reward off) in the loss
        kl = kl_penalty(batch.logprobs, batch.ref_logprobs, config.kl_estimator) * mask  # (B, T)
        beta = self.beta if config.kl_in_reward else 0.0
        if config.advantage_estimator == "gae":
            # 5) the score on the EOS token; GAE over valid tokens with the critic's values
            rewards = token_rewards(batch.scores, kl, mask, beta)  # (B, T)
            advantages, returns = compute_gae(rewards, batch.values, mask, config.gamma, config.lam)
        else:
            # 5) each sequence's reward against the other samples of its prompt, at every token
            reward = batch.scores - beta * kl.sum(dim=1)  # (B,)
            grouped = group_advantages(reward.view(-1, k), config.advantage_estimator).view(-1)  # (B,)
            advantages, returns = grouped[:, None] * mask, None  # (B, T)
            rewards = reward[:, None] * mask / mask.sum(dim=1, keepdim=True).clamp(min=1)  # its sum is the reward
        if config.whiten_advantages:
            advantages = masked_whiten(advantages, mask) * mask
        # 6) several epochs of minibatch updates: clipped ratio, clipped value loss, grad clipping
        stats: list[dict] = []
        for _ in range(config.ppo_epochs):
            order = torch.randperm(len(rows), generator=self.generator)
            for start in range(0, len(rows), self.minibatch_rows):
                picked = order[start : start + self.minibatch_rows]
                stats.append(
                    self._update(batch, picked, advantages, returns, None if values is None else values[picked])
                )  # fmt: skip
        trained = time.perf_counter()
        kl_per_completion = float(kl_penalty(batch.logprobs, batch.ref_logprobs, "k1").mul(mask).sum(1).mean())
        figures = {
            "score": float(batch.scores.mean()),
            "kl": kl_per_completion,
            "beta": self.beta,
            "reward": float(rewards.sum(1).mean()),
            "approx_kl": _mean(stats, "approx_kl"),
            "clipfrac": _mean(stats, "clipfrac"),
            "entropy": _mean(stats, "entropy"),
            "policy_loss": _mean(stats, "policy_loss"),
            "eos_rate": float(batch.has_eos.float().mean()),
            "mean_length": float(mask.sum(1).mean()),
            "samples": len(rows),
            "time_generate": batch.seconds_generating,
            "time_score": rolled_out - started - batch.seconds_generating,
            "time_train": trained - rolled_out,
        }
        if returns is not None:
            explained = 1 - masked_var(returns - batch.values, mask) / masked_var(returns, mask).clamp(min=1e-8)
            figures.update(value_loss=_mean(stats, "value_loss"), explained_variance=float(explained))
        else:
            scores = batch.scores.view(-1, k)  # (P, k)
            figures["score_spread"] = float(scores.std(dim=1).mean())  # what a group baseline has to learn from
        if not config.kl_in_reward:
            figures["kl_loss"] = _mean(stats, "kl_loss")
        figures = self.ranks.mean(figures)  # the whole batch's figures, the same on every rank
        figures["samples"] = len(rows) * self.ranks.count
        if config.adaptive_kl:
            self.beta = adaptive_beta(self.beta, figures["kl"], figures["samples"], config)
        return figures

    def _one_update_per_rollout(self, batch_size: int) -> bool:
        """One epoch of one minibatch: the critic's training forward then sees the rollout's weights,
        so it gives the rollout values (detached) and the value loss in one forward, not two."""
        return self.critic is not None and self.config.ppo_epochs == 1 and self.minibatch_rows >= batch_size

    def _values(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, steps: int) -> torch.Tensor:
        """The critic's value before each response token. -> (B, steps)"""
        with self.autocast():
            return self.critic.token_values(input_ids, attention_mask, steps, self.share_prefix)

    def _update(
        self,
        batch: Rollout,
        rows: torch.Tensor,
        advantages: torch.Tensor,
        returns: torch.Tensor | None,
        values: torch.Tensor | None = None,
    ) -> dict:
        """One gradient step on `rows`; `values` are the critic's (with grad) when already computed."""
        config, mask = self.config, batch.response_mask[rows].float()
        input_ids, attention_mask, response = batch.input_ids[rows], batch.attention_mask[rows], batch.response[rows]
        self.policy_opt.zero_grad()
        figures = {}
        if self.critic is not None:
            self.critic_opt.zero_grad()
            # The loss is pg_loss + vf_coef * v_loss, and the two models share no weight: one backward
            # per term gives the same gradients while only one model's activations are held at a time.
            if values is None:
                values = self._values(input_ids, attention_mask, response.shape[1])
            v_loss = clipped_value_loss(
                values.float(), batch.values[rows], returns[rows], mask, config.clip_range_value
            )  # fmt: skip
            self.accelerator.backward(config.vf_coef * v_loss)
            self.ranks.combine_gradients(list(self.critic.parameters()), 1.0)  # equal shares: the mean
            figures["value_loss"] = float(v_loss.detach())
        with self.autocast():
            logprobs, entropy = response_logprobs(
                self.policy, input_ids, attention_mask, response, config.temperature, self.share_prefix
            )  # fmt: skip
        loss, clipfrac = clipped_policy_loss(logprobs, batch.logprobs[rows], advantages[rows], mask, config.clip_range)
        figures["policy_loss"] = float(loss.detach())
        if not config.kl_in_reward:
            kl_loss = masked_mean(kl_penalty(logprobs, batch.ref_logprobs[rows], "k3"), mask)
            loss = loss + self.beta * kl_loss
            figures["kl_loss"] = float(kl_loss.detach())
        self.accelerator.backward(loss)
        self.accelerator.clip_grad_norm_(self.policy.parameters(), config.max_grad_norm)
        self.policy_opt.step()
        if self.critic is not None:
            self.accelerator.clip_grad_norm_(self.critic.parameters(), config.max_grad_norm)
            self.critic_opt.step()
        log_ratio = (logprobs - batch.logprobs[rows]).detach()
        return {
            **figures,
            "clipfrac": float(clipfrac),
            "approx_kl": float(masked_mean(0.5 * log_ratio**2, mask)),
            "entropy": float(masked_mean(entropy.detach(), mask)),
        }

    def train(self, prompts: list[Chat], log: Log | None = None) -> list[dict]:
        """`config.steps` PPO steps over prompts drawn in a seeded shuffled order."""
        order, history = random.Random(self.config.seed), []
        pool: list[str] = []
        for step in range(1, self.config.steps + 1):
            if len(pool) < self.config.batch_prompts:
                pool += order.sample(prompts, len(prompts))
            batch, pool = pool[: self.config.batch_prompts], pool[self.config.batch_prompts :]
            figures = {"step": step, "steps": self.config.steps, **self.step(self.ranks.shard(batch))}
            history.append(figures)
            if log:
                log(figures)
        return history

    def trained_policy(self) -> PreTrainedModel:
        """The policy with any LoRA adapter merged in, ready for save_pretrained."""
        policy = self.unwrapped_policy
        return merged(policy, self.config.lora_rank > 0)


def _mean(stats: list[dict], key: str) -> float:
    return sum(s[key] for s in stats) / len(stats)
