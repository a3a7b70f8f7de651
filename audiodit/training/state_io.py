"""The resumable training state, written without pickle: safetensors for tensors, JSON for the rest.

accelerate's `save_state`/`load_state` store the RNG states and registered objects as pickles and
load them with `weights_only=False`: a checkpoint whose state file was replaced by a crafted pickle
ran its code on `--resume` (issue 22). Here the same state is written as:

    model.safetensors, discriminator.safetensors      weights of the trained modules (unwrapped; with
                                                      `trained_only`, only parameters that train)
    optimizer.safetensors + optimizer.json            optimizer tensors (moments, step counts) and
    (d_optimizer.* for the discriminator's)           everything else (param groups, ...)
    lr_scheduler.json                                 the LR schedule's state_dict
    grad_scaler.json                                  fp16 mixed precision: the loss scaler's state
    rng_<rank>.safetensors + rng_<rank>.json          each process's torch (CPU and CUDA), NumPy
                                                      and Python RNG states

Loading reads only safetensors and JSON, so it cannot run code. Sharded setups (FSDP, DeepSpeed)
write their own shard formats and still go through accelerate; they are not used on the CPU and
single-GPU paths this project tests.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from audiodit.configuration import atomic_write_text

SEP = "/"  # joins nested keys in safetensors names


def _split(tree, prefix: str = ""):
    """(tensors, skeleton): every tensor of a nested dict/list moved out under its path, replaced in
    the JSON-able skeleton by {"__tensor__": path}."""
    tensors = {}

    def walk(node, path):
        if isinstance(node, torch.Tensor):
            tensors[path] = node.detach().cpu().contiguous()
            return {"__tensor__": path}
        if isinstance(node, dict):
            if not all(isinstance(key, (str, int)) for key in node):
                raise TypeError(f"state keys must be str or int, got {list(node)[:3]}")
            # JSON keys are strings: keep the int ones recognisable.
            return {"__dict__": [[key, walk(value, f"{path}{SEP}{key}")] for key, value in node.items()]}
        if isinstance(node, (list, tuple)):
            return {"__list__": [walk(value, f"{path}{SEP}{index}") for index, value in enumerate(node)],
                    "tuple": isinstance(node, tuple)}
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"cannot store {type(node).__name__} at {path!r} without pickle")

    return tensors, walk(tree, prefix)


def _join(skeleton, tensors):
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__dict__" in skeleton:
            return {key: _join(value, tensors) for key, value in skeleton["__dict__"]}
        if "__list__" in skeleton:
            items = [_join(value, tensors) for value in skeleton["__list__"]]
            return tuple(items) if skeleton.get("tuple") else items
        raise ValueError(f"unknown state node {sorted(skeleton)}")
    return skeleton


def save_tree(tree, directory: Path, name: str) -> None:
    """A nested state (dicts, lists, tensors, plain values) as NAME.safetensors + NAME.json."""
    tensors, skeleton = _split(tree, name)
    save_file(tensors, str(directory / f"{name}.safetensors"))
    atomic_write_text(directory / f"{name}.json", json.dumps(skeleton) + "\n")


def load_tree(directory: Path, name: str):
    skeleton = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
    return _join(skeleton, load_file(str(directory / f"{name}.safetensors")))


def rng_state() -> dict:
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": numpy_state[0], "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
                  "pos": int(numpy_state[2]), "has_gauss": int(numpy_state[3]), "cached_gaussian": float(numpy_state[4])},
        "python": {"version": python_state[0], "state": list(python_state[1]), "gauss_next": python_state[2]},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def trained_names(module: torch.nn.Module) -> set[str]:
    return {name for name, parameter in module.named_parameters() if parameter.requires_grad}


def save_training_state(directory: Path, accelerator, modules: dict, optimizers: dict, lr_scheduler,
                        trained_only: bool = False) -> None:
    """Write the state of every process into `directory` (which every process can reach)."""
    directory = Path(directory)
    if accelerator.is_main_process:
        directory.mkdir(parents=True, exist_ok=True)
        for name, module in modules.items():
            weights = accelerator.get_state_dict(module)
            if trained_only:
                kept = trained_names(accelerator.unwrap_model(module))
                weights = {key: value for key, value in weights.items() if key in kept}
            save_file({key: value.detach().cpu().contiguous() for key, value in weights.items()},
                      str(directory / f"{name}.safetensors"))
        for name, optimizer in optimizers.items():
            save_tree(optimizer.state_dict(), directory, name)
        atomic_write_text(directory / "lr_scheduler.json", json.dumps(lr_scheduler.state_dict()) + "\n")
        if getattr(accelerator, "scaler", None) is not None:  # fp16 loss scale and its growth counter
            atomic_write_text(directory / "grad_scaler.json", json.dumps(accelerator.scaler.state_dict()) + "\n")
    accelerator.wait_for_everyone()
    save_tree(rng_state(), directory, f"rng_{accelerator.process_index}")
    accelerator.wait_for_everyone()


def is_pickle_free(directory: Path) -> bool:
    return (Path(directory) / "lr_scheduler.json").is_file()


def load_training_state(directory: Path, accelerator, modules: dict, optimizers: dict, lr_scheduler,
                        trained_only: bool = False) -> None:
    """Restore what `save_training_state` wrote; reads only safetensors and JSON."""
    directory = Path(directory)
    # Every rank makes the same decision before loading anything (a rank that raised alone would
    # leave the others waiting at the next barrier).
    missing = [f"rng_{rank}.json" for rank in range(accelerator.num_processes)
               if not (directory / f"rng_{rank}.json").is_file()]
    if missing:
        raise ValueError(f"{directory} was saved by fewer processes than resume it (no {', '.join(missing)}); "
                         "resume with the number of processes it was saved with")
    for name, module in modules.items():
        module = accelerator.unwrap_model(module)
        weights = load_file(str(directory / f"{name}.safetensors"))
        if not trained_only:
            module.load_state_dict(weights)
            continue
        expected = trained_names(module)
        if set(weights) != expected:
            missing, extra = sorted(expected - set(weights)), sorted(set(weights) - expected)
            raise ValueError(f"{directory / name}.safetensors does not hold the weights this run trains "
                             f"(missing {missing[:3]}, unexpected {extra[:3]}): the checkpoint is of another "
                             "configuration (training.lora)")
        module.load_state_dict(weights, strict=False)
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(load_tree(directory, name))
    lr_scheduler.load_state_dict(json.loads((directory / "lr_scheduler.json").read_text(encoding="utf-8")))
    if getattr(accelerator, "scaler", None) is not None and (directory / "grad_scaler.json").is_file():
        accelerator.scaler.load_state_dict(json.loads((directory / "grad_scaler.json").read_text(encoding="utf-8")))
    set_rng_state(load_tree(directory, f"rng_{accelerator.process_index}"))
