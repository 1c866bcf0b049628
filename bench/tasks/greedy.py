"""Greedy decoding for decoders, with a KV cache, the same way for every method family.

peft's `generate` is not used: with peft 0.21 and transformers 5 it drops a prefix-tuning prefix. transformers 5
hands the cache to the model as `cache`, peft 0.21's `prepare_inputs_for_generation` looks for `past_key_values`,
and the prefix it puts there never reaches the attention layers: on a 2-layer random Llama with a perturbed prefix
the forward pass's next token is 19544, `generate`'s is 42, the base model's 42. So every generated headline of
prefix tuning was the base model's. peft 0.22 keeps the prefix; one decoding path still serves every method under
every peft version. Here the prefill is built as peft's forward builds it in training (a prefix as the
cache's first entries, a soft prompt's embeddings before the input's), and decoding continues through the
transformer with that cache. Positions follow training too: a left-padded row's tokens are numbered as if unpadded.

`first_token_check` then asks, for a few items, whether the first generated token is what the model's own forward
pass (the path training used, one unpadded row) predicts: what is scored is what was trained.
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch

PREFIX_TYPES = {"PREFIX_TUNING", "CARTRIDGE"}  # peft types whose prompt is the cache's first key/value entries
EMBEDDING_TYPES = {"PROMPT_TUNING", "P_TUNING"}  # peft types whose prompt is embeddings before the input's
CHECK_TOLERANCE = 0.01  # a near tie: the token's logit within 1% of (max - mean logit) of the forward's top logit


def _prompt_kind(model) -> str | None:
    """"prefix", "embeddings", "other" (a prompt-learning type decoded without a cache) or None (no soft prompt)."""
    config = getattr(model, "active_peft_config", None)
    if config is None or not getattr(config, "is_prompt_learning", False):
        return None
    kind = str(getattr(config.peft_type, "value", config.peft_type))
    return "prefix" if kind in PREFIX_TYPES else "embeddings" if kind in EMBEDDING_TYPES else "other"


def _body(model):
    """The model that continues from the cache: peft's base model (its injected layers active), else the model."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _cache_keyword(body) -> str:
    return "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"


def _positions(attention_mask: torch.Tensor, offset: int) -> torch.Tensor:
    """Each real token's position as if its row were not padded (pads get 0), after `offset` virtual tokens."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0) + offset


def _prefill(model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """(logits of the last position, cache, attention mask over the cache, next position of each row)."""
    body, kind = _body(model), _prompt_kind(model)
    rows = input_ids.shape[0]
    virtual = model.active_peft_config.num_virtual_tokens if kind in ("prefix", "embeddings") else 0
    ones = attention_mask.new_ones(rows, virtual)
    mask = torch.cat([ones, attention_mask], dim=1)
    args = {"attention_mask": mask, "use_cache": True}
    if "logits_to_keep" in inspect.signature(body.forward).parameters:
        args["logits_to_keep"] = 1  # the LM head on the last position only: a 49k vocabulary is a fifth of a prefill
    if kind == "prefix":
        args[_cache_keyword(body)] = model.get_prompt(batch_size=rows)
        args.update(input_ids=input_ids, position_ids=_positions(attention_mask, virtual))
    elif kind == "embeddings":
        prompts = model.get_prompt(batch_size=rows)
        embeds = model.word_embeddings(input_ids)
        args["inputs_embeds"] = torch.cat([prompts.to(embeds.dtype), embeds], dim=1)
        args["position_ids"] = _positions(mask, 0)
    else:
        args.update(input_ids=input_ids, position_ids=_positions(attention_mask, 0))
    out = body(**args)
    return out.logits[:, -1], _cache_of(out), mask, args["position_ids"][:, -1] + 1


def _cache_of(out):
    return out.cache if hasattr(out, "cache") else out.past_key_values


def greedy(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
           eos_token_id: int | None, pad_token_id: int | None, stop_at_eos: bool = True,
           on_token: Callable[[int], None] | None = None,
           finished: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """(rows, up to max_new_tokens) greedy token ids after the (left-padded) prompts; a finished row continues with
    pad_token_id. on_token(i) runs once the i-th new token of every row is known (a timer's hook); finished(tokens so
    far) -> a bool per row: rows whose further tokens cannot change what is scored (decoding stops when all are)."""
    if _prompt_kind(model) == "other":
        return _greedy_without_cache(model, input_ids, attention_mask, max_new_tokens, eos_token_id, pad_token_id,
                                     stop_at_eos, on_token)
    body = _body(model)
    keyword = _cache_keyword(body)
    logits, cache, mask, position = _prefill(model, input_ids, attention_mask)
    pad = pad_token_id if pad_token_id is not None else (eos_token_id or 0)
    done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    new_tokens = []
    for step in range(max_new_tokens):
        token = logits.argmax(-1)
        token = torch.where(done, torch.full_like(token, pad), token)
        new_tokens.append(token)
        if on_token is not None:
            on_token(step)
        if stop_at_eos and eos_token_id is not None:
            done |= token == eos_token_id
        if finished is not None:
            done |= finished(torch.stack(new_tokens, dim=1))
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        out = body(input_ids=token[:, None], attention_mask=mask, position_ids=position[:, None], use_cache=True,
                   **{keyword: cache})
        logits, cache, position = out.logits[:, -1], _cache_of(out), position + 1
    return torch.stack(new_tokens, dim=1)


def _greedy_without_cache(model, input_ids, attention_mask, max_new_tokens, eos_token_id, pad_token_id,
                          stop_at_eos, on_token):
    """A prompt-learning type this module does not build a cache for: the whole sequence through the model's own
    forward at every step (slow, but the same path training used)."""
    pad = pad_token_id if pad_token_id is not None else (eos_token_id or 0)
    done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    new_tokens = []
    for step in range(max_new_tokens):
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, -1]
        token = torch.where(done, torch.full_like(done, pad, dtype=torch.long), logits.argmax(-1))
        new_tokens.append(token)
        if on_token is not None:
            on_token(step)
        if stop_at_eos and eos_token_id is not None:
            done |= token == eos_token_id
            if bool(done.all()):
                break
        input_ids = torch.cat([input_ids, token[:, None]], dim=1)
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(attention_mask.shape[0], 1)], dim=1)
    return torch.stack(new_tokens, dim=1)


def forward_next_token_logits(model, prompt: list[int], device) -> torch.Tensor:
    """The next-token logits of the model's own forward pass on one unpadded prompt (the path training used)."""
    ids = torch.tensor([prompt], device=device)
    return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1].float()


def first_token_agrees(logits: torch.Tensor, token: int) -> bool:
    """The generated first token is the forward pass's argmax, or within a near tie of it (batching and padding
    move logits by float noise, which can swap two nearly equal tokens)."""
    top = logits.max()
    return int(logits.argmax()) == token or bool(top - logits[token] <= CHECK_TOLERANCE * (top - logits.mean()))
