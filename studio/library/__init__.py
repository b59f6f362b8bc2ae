"""Files, metadata and naming for Latent Studio.

Pure Python + Pillow + numpy: no torch, no Qt, so the CLI's ``info`` command, the gallery and tests
import it instantly.
"""

from studio.library.images import (
    MAX_PIXELS,
    ImageLoadError,
    SaveError,
    atomic_write_bytes,
    encode_image,
    load_image,
    save_image,
    sha256_image,
    to_rgb,
)
from studio.library.metadata import (
    PARAMETERS_KEY,
    STUDIO_KEY,
    ImageMetadata,
    MetadataError,
    exif_for,
    format_parameters,
    parse_parameters,
    pnginfo_for,
    read_metadata,
)
from studio.library.naming import DEFAULT_TEMPLATE, output_path

__all__ = [
    "DEFAULT_TEMPLATE",
    "MAX_PIXELS",
    "PARAMETERS_KEY",
    "STUDIO_KEY",
    "ImageLoadError",
    "ImageMetadata",
    "MetadataError",
    "SaveError",
    "atomic_write_bytes",
    "encode_image",
    "exif_for",
    "format_parameters",
    "load_image",
    "output_path",
    "parse_parameters",
    "pnginfo_for",
    "read_metadata",
    "save_image",
    "sha256_image",
    "to_rgb",
]
