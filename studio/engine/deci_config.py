"""DeciDiffusion 1.0's UNet-NAS configuration, as data (no torch: the tiny-model builder and the catalogue
read it without loading the network code in `deci_unet`)."""

from __future__ import annotations

from typing import Any

# The "configurations" of DeciDiffusion 1.0's flexible_unet/config.json (revision 99d0c31).
DECI_V1_CONFIGURATIONS: dict[str, Any] = {
    "sample_size": 64,
    "temb_dim": 1280,
    "resnet_eps": 1e-5,
    "resnet_act_fn": "silu",
    "num_attention_heads": 8,
    "cross_attention_dim": 768,
    "mix_block_in_forward": True,
    "down_blocks_in_channels": [320, 320, 640],
    "down_blocks_out_channels": [320, 640, 1280],
    "down_blocks_num_resnets": [2, 2, 1],
    "down_blocks_num_attentions": [0, 1, 3],
    "add_downsample": [True, True, True],
    "add_upsample_mid_block": True,
    "mid_num_resnets": 4,
    "mid_num_attentions": 2,
    "prev_output_channels": [1280, 1280, 640],
    "up_blocks_num_resnets": [2, 3, 3],
    "up_blocks_num_attentions": [6, 3, 0],
    "add_upsample": [True, True, False],
}
DECI_V1_PARAMETERS = 814_746_884


def scaled_configurations(widths: dict[int, int], **changes: Any) -> dict[str, Any]:
    """The real configuration with every channel count mapped through `widths` (e.g. {320: 32, 640: 64,
    1280: 64}) and other fields replaced: the same block counts, layouts and quirks at other widths."""
    config = {**DECI_V1_CONFIGURATIONS, **changes}
    for key in ("down_blocks_in_channels", "down_blocks_out_channels", "prev_output_channels"):
        config[key] = [widths[c] for c in DECI_V1_CONFIGURATIONS[key]]
    return config
