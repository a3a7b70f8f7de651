"""audiodit: text-to-audio latent diffusion transformer over spacetime latent patches."""

__version__ = "0.1.0"
