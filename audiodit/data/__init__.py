"""Training data: audio folders, pre-encoded latent shards, WebDataset tar shards.

Every dataset yields dicts with the same keys (see `audiodit.data.folder.collate`), so the
training stages do not care where the data came from:

    audio (2, S) or latents (C, T)    seconds_start, seconds_total    caption    id
"""
