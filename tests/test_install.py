"""The documented install (constraints.txt) gives a torch stack where every library imports."""

import importlib


def test_open_clip_transformers_diffusers_import_together():
    import torch
    import torchvision

    for name in ("open_clip", "transformers", "diffusers", "accelerate", "timm"):
        importlib.import_module(name)
    # torchvision's compiled ops must register against this torch build (the CPU-wheel trap).
    assert hasattr(torch.ops.torchvision, "nms")
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    kept = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
    assert kept.tolist() == [0]


def test_open_clip_tokenizer_works_offline():
    import open_clip

    tokens = open_clip.get_tokenizer("ViT-B-32")(["a bach chorale for organ"])
    # Ordinary words must map to ordinary BPE ids, not only start/end/pad ids.
    assert (tokens[0] > 0).sum() > 3
