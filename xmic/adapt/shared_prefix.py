"""The CLIP text tower on prompts that share their first tokens, each shared prefix computed once.

CLIP's text transformer is causal, so the hidden states of the first P tokens of a prompt depend on those P
tokens only. A learned-context prompt ``<bos> X_1 .. X_n <name> <eos>`` (class name at the end) starts with the
same P = 1 + n tokens for every class of one context, so of the B x K prompts of a Co-CoOp step (or the K of a
CoOp step) only B (or 1) distinct prefixes exist. This forward runs each prefix once and the K suffixes
(``<name> <eos>`` and padding) against the prefix's keys and values: the same arithmetic per token as the full
forward (:class:`transformers.CLIPTextModelWithProjection`), in fewer and shorter rows, so the text embeddings
agree with the full forward's up to float rounding. It reads the Hugging Face modules' own weights and layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def supports_shared_prefix(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a CLIP text tower with the layout this forward reads (pre-LN layers, EOS pooling)."""
    text = getattr(model, "text_model", None)
    layers = getattr(getattr(text, "encoder", None), "layers", None)
    return (
        getattr(model.config, "model_type", None) == "clip_text_model"
        and hasattr(model, "text_projection")
        and hasattr(text, "final_layer_norm")
        and layers is not None
        and all(hasattr(layer, n) for layer in layers for n in ("self_attn", "layer_norm1", "layer_norm2", "mlp"))
    )


def shared_prefix_forward(
    model: torch.nn.Module,
    ids: torch.Tensor,
    eos: torch.Tensor,
    ctx_pos: torch.Tensor,
    owner: torch.Tensor,
    contexts: torch.Tensor,
    n_prefix: int,
) -> torch.Tensor:
    """Projected text embeddings of N prompts whose first ``n_prefix`` tokens are their context owner's.

    Args:
        model: A ``CLIPTextModelWithProjection`` (frozen).
        ids: (N, L) token ids of the prompts (padded); rows ``[0, n_prefix)`` must hold ``<bos>`` and the
            context placeholders ``1 .. n_prefix - 1`` (class name after them).
        eos: (N,) position of each prompt's pooled (end-of-text) token, at least ``n_prefix``.
        ctx_pos: (N, n) context slots of each prompt, ascending; the first ``n_prefix - 1`` are ``1 ..
            n_prefix - 1``, the rest lie after the prefix.
        owner: (N,) index into ``contexts`` of each prompt's context.
        contexts: (U, n, W) the distinct contexts.
        n_prefix: P, the number of leading tokens every prompt of one context shares.

    Returns:
        (N, D) float32 text embeddings, as ``model(input_ids, attention_mask).text_embeds``.
    """
    text = model.text_model
    emb = text.embeddings
    n, length = ids.shape
    u, n_ctx, width = contexts.shape
    p = n_prefix
    n_before = p - 1
    positions = emb.position_embedding.weight[:length]
    # prefix rows: <bos> then the context words before the name; positions 0 .. P-1
    bos = emb.token_embedding(ids[:1, :1]).expand(u, 1, width)
    prefix = torch.cat([bos, contexts[:, :n_before].to(bos.dtype)], dim=1) + positions[:p]
    # suffix rows: the name, the context words after it, <eos>, padding; positions P .. L-1
    suffix = emb.token_embedding(ids[:, p:])
    after = ctx_pos[:, n_before:] - p
    if after.shape[1]:
        index = after.unsqueeze(-1).expand(-1, -1, width)
        suffix = suffix.scatter(1, index, contexts[owner, n_before:].to(suffix.dtype))
    suffix = suffix + positions[p:]
    s = length - p
    # a suffix token sees the whole prefix and the suffix tokens up to itself
    allowed = torch.ones(s, p + s, dtype=torch.bool, device=ids.device)
    allowed[:, p:] = torch.ones(s, s, dtype=torch.bool, device=ids.device).tril()
    rows = torch.cat([prefix.reshape(u * p, width), suffix.reshape(n * s, width)])

    def split(t: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(U*P + N*S, W) -> prefix (U, H, P, W/H) and suffix (N, H, S, W/H)."""
        a = t[: u * p].reshape(u, p, heads, -1).transpose(1, 2)
        b = t[u * p :].reshape(n, s, heads, -1).transpose(1, 2)
        return a, b

    for layer in text.encoder.layers:
        attn = layer.self_attn
        h = layer.layer_norm1(rows)
        q, k, v = (split(proj(h), attn.num_heads) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
        (qp, qs), (kp, ks), (vp, vs) = q, k, v
        out_p = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True, scale=attn.scale)
        keys = torch.cat([kp[owner], ks], dim=2)
        values = torch.cat([vp[owner], vs], dim=2)
        out_s = F.scaled_dot_product_attention(qs, keys, values, attn_mask=allowed, scale=attn.scale)
        out = torch.cat([out_p.transpose(1, 2).reshape(u * p, width), out_s.transpose(1, 2).reshape(n * s, width)])
        rows = rows + attn.out_proj(out)
        rows = rows + layer.mlp(layer.layer_norm2(rows))
    last = rows[u * p :].reshape(n, s, width)[torch.arange(n, device=ids.device), eos - p]
    return model.text_projection(text.final_layer_norm(last)).float()
