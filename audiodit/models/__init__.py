"""Models that users load: the audio VAE and the diffusion transformer (diffusers models)."""
