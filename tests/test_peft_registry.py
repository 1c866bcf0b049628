"""Every member of `peft.PeftType` is accounted for: a registered method runs it, or a listed reason says why it
cannot run here. A peft upgrade that adds a type fails here, naming it.

pytest tests/test_peft_registry.py -q        (a few seconds)
"""

from __future__ import annotations

import dataclasses

import pytest

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
