"""Which transformers architecture expresses a model config exactly, and its config and weights.

Three mappings, each exact in fp32 (same logits up to float rounding):

- ``llama``: RoPE, RMSNorm, SwiGLU, sequential blocks (MHA/GQA/MQA, tied or untied, biases or not);
- ``qwen3``: the same with QK-norm (RMSNorm of each query/key head before RoPE), no biases;
- ``gpt2``: learned positions, LayerNorm, tanh-GELU, sequential blocks. GPT-2 has no grouped
  key/value heads and always has biases: shared key/value heads are repeated per query head and
  missing biases are written as zeros, which computes the same function.

Anything else (parallel residual, squared ReLU, no positions, mixed families) is refused by
:func:`choose_architecture` in one line naming the key. Our RoPE rotates interleaved channel pairs
(0,1), (2,3), ...; transformers rotates halves (i, i + head_dim/2), so query/key rows (and their
QK-norm weights) are permuted per head on export — attention scores are unchanged by a permutation
applied to both queries and keys.
"""

from __future__ import annotations

import torch

from scaling.errors import ScalingError
from scaling.model import ffn_hidden_size, kv_heads, padded_vocab_size

ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM", "gpt2": "GPT2LMHeadModel"}


def _refuse(key: str, value, why: str) -> ScalingError:
    return ScalingError(f"cannot export {key}={value}: {why}")


def choose_architecture(m) -> str:
    """``llama``, ``qwen3`` or ``gpt2`` for a model config; a one-line refusal naming the key otherwise."""
    if m.parallel_residual:
        raise _refuse("model.parallel_residual", "true", "no transformers architecture shares one norm "
                      "between parallel attention and MLP branches; export sequential-block models")
    if m.activation == "relu2":
        raise _refuse("model.activation", "relu2", "squared ReLU has no transformers architecture with these "
                      "blocks; use swiglu (LLaMA) or gelu (GPT-2)")
    if m.positions == "rope":
        if m.norm != "rmsnorm":
            raise _refuse("model.norm", m.norm, "RoPE models export as LLaMA, which needs model.norm=rmsnorm")
        if m.activation != "swiglu":
            raise _refuse("model.activation", m.activation,
                          "RoPE models export as LLaMA, which needs model.activation=swiglu")
        if m.qk_norm and m.bias:
            raise _refuse("model.bias", "true", "QK-norm models export as Qwen3, whose MLP has no biases")
        return "qwen3" if m.qk_norm else "llama"
    if m.positions == "learned":
        if m.norm != "layernorm":
            raise _refuse(
                "model.norm", m.norm, "learned-position models export as GPT-2, which needs layernorm"
            )
        if m.activation != "gelu":
            raise _refuse("model.activation", m.activation,
                          "learned-position models export as GPT-2, which needs model.activation=gelu")
        if m.qk_norm:
            raise _refuse(
                "model.qk_norm", "true", "GPT-2 has no QK-norm; export it with model.positions=rope"
            )
        return "gpt2"
    raise _refuse(
        "model.positions", m.positions, "every transformers decoder has positions; use rope or learned"
    )


def hf_config(arch: str, m, eos_id: int, pad_id: int | None):
    """The transformers config object of ``arch`` for model config ``m``."""
    import transformers

    vocab = padded_vocab_size(m)
    common = {"vocab_size": vocab, "tie_word_embeddings": bool(m.tie_embeddings), "eos_token_id": eos_id,
              "bos_token_id": eos_id, "pad_token_id": pad_id}
    if arch == "gpt2":
        return transformers.GPT2Config(
            n_embd=m.d_model, n_layer=m.n_layer, n_head=m.n_head, n_inner=ffn_hidden_size(m),
            n_positions=m.max_seq_len, activation_function="gelu_new", layer_norm_epsilon=m.norm_eps,
            resid_pdrop=m.dropout, embd_pdrop=m.dropout, attn_pdrop=m.dropout, initializer_range=m.init_std,
            **common)
    cls = transformers.Qwen3Config if arch == "qwen3" else transformers.LlamaConfig
    extra = {} if arch == "qwen3" else {"mlp_bias": bool(m.bias)}
    return cls(
        hidden_size=m.d_model, intermediate_size=ffn_hidden_size(m), num_hidden_layers=m.n_layer,
        num_attention_heads=m.n_head, num_key_value_heads=kv_heads(m), head_dim=m.d_model // m.n_head,
        hidden_act="silu", max_position_embeddings=m.max_seq_len, rms_norm_eps=m.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": float(m.rope_theta)},
        attention_bias=bool(m.bias), attention_dropout=m.dropout, initializer_range=m.init_std,
        **extra, **common)


def _halves_order(head_dim: int) -> torch.Tensor:
    """Channel order that turns interleaved RoPE pairs into rotate-half pairs."""
    return torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])


def _permute_heads(t: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """Reorder the rows of each head of a (n_heads·head_dim, ...) tensor to rotate-half order."""
    order = _halves_order(head_dim)
    shaped = t.reshape(n_heads, head_dim, *t.shape[1:])
    return shaped[:, order].reshape(t.shape)


def _split_qkv(t: torch.Tensor, m) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    hd = m.d_model // m.n_head
    return t.split([m.n_head * hd, kv_heads(m) * hd, kv_heads(m) * hd], dim=0)


def llama_weights(state: dict, m, arch: str) -> dict[str, torch.Tensor]:
    """Our state dict as a LLaMA / Qwen3 state dict (``model.layers.N...``, ``lm_head`` when untied)."""
    hd, n_kv = m.d_model // m.n_head, kv_heads(m)
    out = {"model.embed_tokens.weight": state["embed.weight"], "model.norm.weight": state["norm.weight"]}
    if not m.tie_embeddings:
        out["lm_head.weight"] = state["lm_head.weight"]
    for i in range(m.n_layer):
        ours, hf = f"blocks.{i}.", f"model.layers.{i}."
        out[hf + "input_layernorm.weight"] = state[ours + "norm1.weight"]
        out[hf + "post_attention_layernorm.weight"] = state[ours + "norm2.weight"]
        for kind in ("weight", "bias") if m.bias else ("weight",):
            q, k, v = _split_qkv(state[ours + f"attn.qkv.{kind}"], m)
            out[hf + f"self_attn.q_proj.{kind}"] = _permute_heads(q, m.n_head, hd)
            out[hf + f"self_attn.k_proj.{kind}"] = _permute_heads(k, n_kv, hd)
            out[hf + f"self_attn.v_proj.{kind}"] = v
            out[hf + f"self_attn.o_proj.{kind}"] = state[ours + f"attn.proj.{kind}"]
            gate, up = state[ours + f"mlp.up.{kind}"].chunk(2, dim=0)
            out[hf + f"mlp.gate_proj.{kind}"], out[hf + f"mlp.up_proj.{kind}"] = gate, up
            out[hf + f"mlp.down_proj.{kind}"] = state[ours + f"mlp.down.{kind}"]
        if arch == "qwen3":
            order = _halves_order(hd)
            out[hf + "self_attn.q_norm.weight"] = state[ours + "attn.q_norm.weight"][order]
            out[hf + "self_attn.k_norm.weight"] = state[ours + "attn.k_norm.weight"][order]
    return out


def _or_zeros(state: dict, key: str, like: torch.Tensor) -> torch.Tensor:
    return state[key] if key in state else torch.zeros(like.shape[0], dtype=like.dtype)


def gpt2_weights(state: dict, m) -> dict[str, torch.Tensor]:
    """Our state dict as a GPT-2 state dict (Conv1D weights are stored input-major, i.e. transposed)."""
    hd, n_kv = m.d_model // m.n_head, kv_heads(m)
    repeat = m.n_head // n_kv
    out = {
        "transformer.wte.weight": state["embed.weight"],
        "transformer.wpe.weight": state["pos_embed.weight"],
        "transformer.ln_f.weight": state["norm.weight"],
        "transformer.ln_f.bias": _or_zeros(state, "norm.bias", state["norm.weight"]),
    }
    if not m.tie_embeddings:
        out["lm_head.weight"] = state["lm_head.weight"]

    def expand_kv(t: torch.Tensor) -> torch.Tensor:
        # a shared key/value head serves `repeat` consecutive query heads (as SDPA's enable_gqa does)
        return (
            t.reshape(n_kv, hd, *t.shape[1:])
            .repeat_interleave(repeat, dim=0)
            .reshape(m.d_model, *t.shape[1:])
        )

    for i in range(m.n_layer):
        ours, hf = f"blocks.{i}.", f"transformer.h.{i}."
        for norm, name in (("norm1", "ln_1"), ("norm2", "ln_2")):
            weight = state[ours + f"{norm}.weight"]
            out[hf + f"{name}.weight"] = weight
            out[hf + f"{name}.bias"] = _or_zeros(state, ours + f"{norm}.bias", weight)
        qkv_w = state[ours + "attn.qkv.weight"]
        q, k, v = _split_qkv(qkv_w, m)
        out[hf + "attn.c_attn.weight"] = torch.cat([q, expand_kv(k), expand_kv(v)]).t().contiguous()
        if m.bias:
            qb, kb, vb = _split_qkv(state[ours + "attn.qkv.bias"], m)
            out[hf + "attn.c_attn.bias"] = torch.cat([qb, expand_kv(kb), expand_kv(vb)])
        else:
            out[hf + "attn.c_attn.bias"] = torch.zeros(3 * m.d_model, dtype=qkv_w.dtype)
        for ours_name, hf_name in (
            ("attn.proj", "attn.c_proj"),
            ("mlp.up", "mlp.c_fc"),
            ("mlp.down", "mlp.c_proj"),
        ):
            weight = state[ours + f"{ours_name}.weight"]
            out[hf + f"{hf_name}.weight"] = weight.t().contiguous()
            out[hf + f"{hf_name}.bias"] = _or_zeros(state, ours + f"{ours_name}.bias", weight)
    return out


def hf_weights(arch: str, state: dict, m) -> dict[str, torch.Tensor]:
    """Our Transformer state dict converted to the named architecture's parameter names and layouts."""
    weights = gpt2_weights(state, m) if arch == "gpt2" else llama_weights(state, m, arch)
    return {k: v.detach().to(torch.float32).contiguous() for k, v in weights.items()}
