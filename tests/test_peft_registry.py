"""Every member of `peft.PeftType` is accounted for: a registered method runs it, or a listed reason says why it
cannot run here. A peft upgrade that adds a type fails here, naming it.

pytest tests/test_peft_registry.py -q        (a few seconds)
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from bench import ConfigError, methods
from bench.methods import _peft_types, generic


def test_every_peft_type_runs_or_has_a_reason():
    status = _peft_types.status()
    unplaced = sorted(t for t, s in status.items() if s is None)
    assert not unplaced, f"peft types neither run by a method nor listed in NOT_RUNNABLE: {', '.join(unplaced)}"


def test_no_type_both_runs_and_is_refused_and_no_stale_entries():
    running = _peft_types.runs()
    assert not set(running) & set(_peft_types.NOT_RUNNABLE)
    known = set(_peft_types.peft_types())
    assert set(running) <= known and set(_peft_types.NOT_RUNNABLE) <= known


def test_an_unknown_type_is_reported_by_name(monkeypatch):
    """The check reads peft at run time: a type peft adds shows up as unplaced."""
    types = _peft_types.peft_types()
    monkeypatch.setattr(_peft_types, "peft_types", lambda: [*types, "NEWTYPE"])
    assert _peft_types.status()["NEWTYPE"] is None


def test_most_types_run():
    assert len(_peft_types.runs()) >= 35


@pytest.mark.parametrize("method", sorted(methods.registry()))
def test_registered_peft_type_is_a_peft_type(method):
    peft_type = methods.get(method).peft_type
    assert peft_type is None or peft_type in _peft_types.peft_types()


def test_register_reads_the_peft_type_its_apply_carries(monkeypatch):
    """A module names its peft type once, in apply_peft_type; register records it and refuses a contradiction."""
    from bench.methods._common import apply_peft_type

    monkeypatch.setattr(methods, "_REGISTRY", dict(methods._REGISTRY))
    methods.register("hra-again", family="reparameterization", config=dict, summary="-")(apply_peft_type("HRA"))
    assert methods._REGISTRY["hra-again"].peft_type == "HRA"
    with pytest.raises(RuntimeError, match="registered as LORA but its apply runs HRA"):
        methods.register("hra-lora", family="reparameterization", config=dict, summary="-",
                         peft_type="LORA")(apply_peft_type("HRA"))


def test_generic_path_names_the_closest_type_and_field():
    with pytest.raises(ConfigError, match=r"`method.params.peft_type` \('NOPE'\) is not a peft type"):
        generic.PeftGenericConfig(peft_type="NOPE")
    with pytest.raises(ConfigError, match=r"`method.params.config.rr` is not a field of peft's HRAConfig; closest: r"):
        generic.PeftGenericConfig(peft_type="HRA", config={"rr": 8})
    config = generic.PeftGenericConfig(peft_type="hra", config={"r": 4, "apply_GS": True})
    assert config.peft_type == "HRA"


def test_generic_fields_are_peft_config_fields():
    from peft import HRAConfig

    fields = {f.name for f in dataclasses.fields(HRAConfig)}
    assert set(generic.settable_fields("HRA")) == fields - set(generic.SET_BY_THE_HARNESS)


def test_generic_config_composes_without_plus():
    from bench.config import compose

    cfg = compose("method=peft", "method.params.peft_type=HRA", "method.params.config.r=4")
    assert cfg.method.params == {"peft_type": "HRA", "config": {"r": 4}}



MIXED = sorted(name for name, m in methods.registry().items() if m.mixed_batches and name != "qlora")  # qlora: CUDA


@pytest.fixture(scope="module")
def tiny_llama():
    """task -> (tiny Llama for it, arch), each loaded once."""
    from pathlib import Path

    from conftest import trial_config

    from bench import models
    from bench.models.arch import inspect

    loaded = {}

    def get(task: str):
        if task not in loaded:
            torch.manual_seed(0)
            cfg = trial_config("model=tiny-llama", f"task={task}", fast=False)
            labels = 5 if cfg.task.kind == "classification" else None
            model, tokenizer = models.load(cfg.model, cfg.task.kind, labels, Path(cfg.cache_dir).expanduser())
            loaded[task] = model.eval(), inspect(model, "decoder", cfg.task.kind, tokenizer)
        return loaded[task]

    return get


# peft mixes a trained classification head (modules_to_save) per row only for LoRA: GLoRA's and RoAd's layers mix
# rows correctly, but every row then goes through the active adapter's head (1.3 and 2.3 off on tiny-llama)
MIXED_CASES = [(name, "bbc-headline") for name in MIXED] + [
    (name, "bbc-topic") for name in MIXED if methods.get(name).peft_type == "LORA"]


@pytest.mark.parametrize("name,task", MIXED_CASES)
def test_mixed_batches_give_each_row_its_own_adapter(name, task, tiny_llama):
    """What `mixed_batches` claims, measured: two adapters with different weights, one batch whose rows name
    either, and each row equals what its adapter alone gives it."""
    from test_methods import TABLE

    base, arch = tiny_llama(task)
    method = methods.get(name)
    torch.manual_seed(0)
    model = method.apply(copy.deepcopy(base), method.build_config(TABLE[name].params), arch).eval()
    model.add_adapter("other", copy.deepcopy(model.peft_config["default"]))
    model.eval()  # the new adapter's dropout modules start in training mode
    with torch.no_grad():  # both adapters away from their (identity) init, differently
        for parameter_name, parameter in model.named_parameters():
            if ".default" in parameter_name or ".other" in parameter_name:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    ids = torch.randint(1000, 5000, (4, 12), generator=torch.Generator().manual_seed(0))
    rows = ["default", "other", "other", "default"]
    with torch.no_grad():
        mixed = model(input_ids=ids, adapter_names=rows).logits
        alone = {}
        for adapter in ("default", "other"):
            model.set_adapter(adapter)
            alone[adapter] = model(input_ids=ids).logits
    expected = torch.stack([alone[adapter][i] for i, adapter in enumerate(rows)])
    assert not torch.allclose(alone["default"], alone["other"])
    assert torch.allclose(mixed, expected, atol=1e-5)


def test_coverage_sweep_runs_every_method_but_the_generic_path_on_both_embedded_models():
    import yaml
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from bench.config import CONF_DIR

    params = yaml.safe_load((CONF_DIR / "sweep" / "coverage.yaml").read_text())["hydra"]["sweeper"]["params"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
        swept = {o.get_key_element(): list(o.sweep_string_iterator()) if o.is_sweep_override()
                 else [o.get_value_element_as_str()] for o in parser.parse_overrides([f"{k}={v}" for k, v in
                                                                                       params.items()])}
    assert set(swept["method"]) == set(methods.registry()) - {"peft"}
    assert set(swept["setting"]) == {"minilm-l6_bbc-topic", "smollm2-135m_bbc-topic"} and swept["seed"] == ["0"]
