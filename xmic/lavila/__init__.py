"""LaViLa (Zhao et al., CVPR 2023) video-text dual encoder: model, released-checkpoint loading and tokenizer."""

from xmic.lavila.checkpoint import (
    LavilaCheckpointError,
    load_lavila,
    read_lavila_state_dict,
    resize_temporal_embed,
    save_lavila_checkpoint,
)
from xmic.lavila.model import LAVILA_CONFIGS, LavilaConfig, LavilaDualEncoder, config_from_state_dict
from xmic.lavila.tokenizer import (
    LAVILA_MEAN,
    LAVILA_STD,
    LavilaTokenizer,
    find_bpe_vocab,
    load_lavila_tokenizer,
)

__all__ = [
    "LAVILA_CONFIGS",
    "LAVILA_MEAN",
    "LAVILA_STD",
    "LavilaCheckpointError",
    "LavilaConfig",
    "LavilaDualEncoder",
    "LavilaTokenizer",
    "config_from_state_dict",
    "find_bpe_vocab",
    "load_lavila",
    "load_lavila_tokenizer",
    "read_lavila_state_dict",
    "resize_temporal_embed",
    "save_lavila_checkpoint",
]
