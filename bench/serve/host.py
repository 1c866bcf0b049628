"""How K adapters sit on one resident base model, behind one small interface the measurements use.

PeftHost       peft methods: adapters loaded by name (PeftModel.load_adapter), switched with set_adapter, LoRA
               hot-swapped in place, merged where the method merges, mixed batches through `adapter_names=`.
BottleneckHost the bottleneck adapters written here (serial, Pfeiffer, parallel): the adapter modules are inserted
               once; each task's trained tensors stay resident as a state dict and switching copies them in.
Methods whose trained tensors are base weights edited in place (full fine-tuning, BitFit, top-k layers, component
subsets) have no host: serving K of them takes K full copies.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from bench.config import ConfigError
from bench.methods._bottleneck import Adapted
from bench.trackers.memory import tensor_bytes


class NotAvailable(Exception):
    """This host cannot do that (a swap kind, mixed batches): the figure is n/a and the message says why."""


def kind_of(model) -> str | None:
    """'peft', 'bottleneck', or None where the method left no adapter to swap (it edits base weights)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return "peft"
    if any(isinstance(module, Adapted) for module in model.modules()):
        return "bottleneck"
    return None


def adapter_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file())


class PeftHost:
    kind = "peft"

    def __init__(self, base):
        self.base, self.model, self.paths = base, None, {}

    def load(self, name: str, path: Path) -> None:
        """One adapter from disk onto the resident base (the first one wraps the base in a PeftModel)."""
        from peft import PeftModel

        if self.model is None:
            self.model = PeftModel.from_pretrained(self.base, str(path), adapter_name=name)
        else:
            self.model.load_adapter(str(path), adapter_name=name)
        self.model.eval()
        self.paths[name] = Path(path)

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    def activate(self, name: str) -> None:
        self.model.set_adapter(name)

    @property
    def active(self) -> str:
        return self.model.active_adapter

    def forward(self, batch: dict, adapter_names: list[str] | None = None):
        if adapter_names is None:
            return self.model(**batch)
        return self.model(**batch, adapter_names=adapter_names)

    def adapter_tensor_bytes(self, name: str) -> int:
        inside = re.compile(rf"(^|\.){re.escape(name)}(\.|$)")
        return tensor_bytes(p for n, p in self.model.named_parameters() if inside.search(n))

    def hotswap_how(self) -> str:
        """peft's in-place hot-swap replaces the active LoRA adapter's tensors with another's read from disk; it
        covers LoRA only, and not a task head (modules_to_save), which is copied in beside it here."""
        from peft.utils.peft_types import PeftType

        config = self.model.peft_config[self.active]
        if config.peft_type != PeftType.LORA:
            raise NotAvailable(f"peft's hotswap_adapter supports LoRA only, not {config.peft_type.value}")
        if config.modules_to_save:
            return "peft hotswap_adapter_from_state_dict + task head copied in"
        return "peft hotswap_adapter"

    def hotswap(self, path: Path) -> None:
        """Replace the active adapter's weights with those saved at `path`, in place (names and memory unchanged)."""
        from peft import LoraConfig
        from peft.utils.hotswap import (
            check_hotswap_configs_compatible,
            hotswap_adapter,
            hotswap_adapter_from_state_dict,
        )
        from peft.utils.save_and_load import _insert_adapter_name_into_state_dict, load_peft_weights

        name = self.active
        if not self.model.peft_config[name].modules_to_save:
            hotswap_adapter(self.model, str(path), adapter_name=name, torch_device=str(self._device()))
            return
        config = LoraConfig.from_pretrained(str(path))
        check_hotswap_configs_compatible(self.model.peft_config[name], config)
        state = load_peft_weights(str(path), device=str(self._device()))
        # keys renamed the way peft's own hotswap_adapter renames them (the head keys are left out first)
        lora = _insert_adapter_name_into_state_dict({k: v for k, v in state.items() if ".lora_" in k}, name, "lora_")
        hotswap_adapter_from_state_dict(self.model, lora, adapter_name=name, config=config)
        parameters = dict(self.model.named_parameters())
        with torch.no_grad():
            for key, value in state.items():
                # a head: saved as `<module>.<param>`, held as `<module>.modules_to_save.<name>.<param>`
                if ".lora_" not in key:
                    module, _, leaf = key.rpartition(".")
                    parameters[f"{module}.modules_to_save.{name}.{leaf}"].copy_(value)

    def check_merge(self) -> None:
        """Merging folds the active adapter into the base weights; soft prompts have nothing to fold."""
        if not hasattr(self.model.base_model, "merge_adapter"):
            raise NotAvailable(f"{type(self.model.peft_config[self.active]).__name__} has nothing to merge into the "
                               "base weights")

    def merge(self, name: str) -> None:
        self.model.set_adapter(name)
        self.model.merge_adapter()

    def unmerge(self) -> None:
        self.model.unmerge_adapter()

    def check_mixed(self) -> None:
        """Only LoRA-type layers read `adapter_names`; others would silently serve every row with the active
        adapter (the traffic module also checks outputs row by row)."""
        from peft.tuners.lora import LoraLayer

        config = self.model.peft_config[self.active]
        if not any(isinstance(module, LoraLayer) for module in self.model.modules()):
            raise NotAvailable(f"peft serves mixed batches (adapter_names) for LoRA-type layers only, not "
                               f"{config.peft_type.value}")
        if getattr(config, "use_dora", False):
            raise NotAvailable("peft refuses adapter_names with DoRA")

    def _device(self):
        return next(self.model.parameters()).device


class BottleneckHost:
    """Adapter modules inserted once into the base; K tasks' tensors resident, the active one copied in."""

    kind = "bottleneck"

    def __init__(self, model):
        self.model = model.eval()
        self.slots = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.store: dict[str, dict[str, torch.Tensor]] = {}
        self.paths: dict[str, Path] = {}
        self.active = None

    def _read(self, path: Path) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        state = load_file(str(Path(path) / "model.safetensors"), device=str(self._device()))
        unknown = sorted(set(state) - set(self.slots))
        mismatched = sorted(k for k in set(state) & set(self.slots) if state[k].shape != self.slots[k].shape)
        if unknown or mismatched or not state:
            raise ConfigError(f"`serve.adapters` ({str(path)!r}) holds tensors of another base model or method "
                              f"({(unknown + mismatched + ['none'])[0]} does not fit this one)")
        return state

    def load(self, name: str, path: Path) -> None:
        self.store[name], self.paths[name] = self._read(path), Path(path)
        if self.active is None:
            self.activate(name)

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    def activate(self, name: str) -> None:
        self._copy_in(self.store[name])
        self.active = name

    def _copy_in(self, state: dict) -> None:
        with torch.no_grad():
            for key, value in state.items():
                self.slots[key].copy_(value)

    def forward(self, batch: dict, adapter_names: list[str] | None = None):
        if adapter_names is not None:
            raise NotAvailable("bottleneck adapters hold one active set of weights: no mixed batches")
        return self.model(**batch)

    def adapter_tensor_bytes(self, name: str) -> int:
        return tensor_bytes(self.store[name].values())

    def hotswap_how(self) -> str:
        return "adapter file read and copied into the active adapter's tensors"

    def hotswap(self, path: Path) -> None:
        self._copy_in(self._read(path))

    def check_merge(self) -> None:
        raise NotAvailable("a bottleneck adapter has a nonlinearity: it cannot fold into the base weights")

    def check_mixed(self) -> None:
        raise NotAvailable("bottleneck adapters hold one active set of weights: no mixed batches")

    def _device(self):
        return next(self.model.parameters()).device


def make(kind: str, base, method, method_cfg, arch):
    """An empty host of `kind` on the resident base (the bottleneck host inserts its modules here)."""
    if kind == "peft":
        return PeftHost(base)
    return BottleneckHost(method.apply(base, method_cfg, arch))
