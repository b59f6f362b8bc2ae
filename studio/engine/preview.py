"""Latent -> RGB previews, cheap enough to run at every step.

The linear factors (design.md section 5) map the SD latent space (SD 1.x, SD 2.x and DeciDiffusion share
it) straight to RGB in [-1, 1]. They apply to the latents as the scheduler sees them (already multiplied
by the VAE scaling factor). TAESD, when its weights are in the local Hugging Face cache, decodes the
same latents to near-final quality.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from PIL import Image

# rows: latent channels 1..4; columns: R, G, B
SD_LATENT_RGB_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
TAESD_REPO = "madebyollin/taesd"


class LinearPreview:
    """Linear projection of one latent (the batch's first image) to a PIL image at latent resolution."""

    def __init__(self, factors=SD_LATENT_RGB_FACTORS):
        import torch

        self._factors = torch.tensor(factors, dtype=torch.float32)

    def __call__(self, latents: torch.Tensor) -> Image.Image:
        import torch
        from PIL import Image

        x = latents[0].detach().to("cpu", torch.float32)  # (4, h, w); a few KB to copy
        rgb = torch.einsum("chw,cr->hwr", x, self._factors)
        pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
        return Image.fromarray(pixels, "RGB")


class TaesdPreview:
    """TAESD decode of the first image's latents: ~2.4 M parameters, near-final previews."""

    def __init__(self, decoder, device, dtype):
        self._decoder = decoder.to(device=device, dtype=dtype)
        self._dtype = dtype

    def __call__(self, latents: torch.Tensor) -> Image.Image:
        import torch
        from PIL import Image

        with torch.no_grad():
            out = self._decoder.decode(latents[:1].to(self._dtype)).sample[0]
        pixels = ((out.float() + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(pixels, "RGB")


def local_taesd(device, dtype, cache_dir=None) -> TaesdPreview | None:
    """TAESD from the local cache only (never downloads during a generation); None when absent."""
    try:
        from diffusers import AutoencoderTiny
        from huggingface_hub import snapshot_download

        path = snapshot_download(
            TAESD_REPO, local_files_only=True, cache_dir=cache_dir, allow_patterns=["*.json", "*.safetensors"]
        )
        return TaesdPreview(AutoencoderTiny.from_pretrained(path, use_safetensors=True), device, dtype)
    except Exception:  # noqa: BLE001 - any failure just means: use the linear preview
        return None
