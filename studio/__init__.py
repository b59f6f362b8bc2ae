"""Latent Studio: a desktop image studio for local diffusion models.

Importing this package must stay instant: no torch, no Qt here.
"""

__version__ = "0.1.0"
