"""Write a learning-rate search's choices for one model into the method YAMLs, so trials on that model train at them.

    python -m bench.results.write_rates results/lr-search --model smollm2-135m            (what it would write)
    python -m bench.results.write_rates results/lr-search --model smollm2-135m --write    (writes conf/method/)

For each method whose YAML has no rate for the model yet, choose_lr's choice on that model's searches (at the
params the method runs with there) becomes `learning_rate_by_model.<model>`, under a comment with the grid's
validation scores, as the hand-written ones read. Left alone, with the reason printed: a choice not confirmed
(directly below a failed rate), one at the edge of its grid (extend the search first), a model the YAML's own
`learning_rate` was chosen on, and a YAML that already holds a rate for the model. The YAMLs are edited as text so
their comments stay; the test split is never read (choose_lr reads validation only).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

from bench import config, methods
from bench.results import choose_lr

RULE = "the lowest rate validation accuracy cannot separate from the best"


def rate_text(rate: float, short: bool = False) -> str:
    """9e-3 as the YAMLs write it: `9.0e-3` as a value, `9e-3` in a comment (`short`)."""
    mantissa, exponent = f"{rate:.1e}".split("e")
    return f"{mantissa.removesuffix('.0') if short else mantissa}e{int(exponent)}"


def grid_text(choice: choose_lr.Choice) -> str:
    """`2e-3 0.880, 6e-3 0.938, 2e-2 failed.` : every rate tried with its mean validation score."""
    shown = {rate: f"{quality:.3f}" for rate, quality in choice.grid.items()}
    shown |= {rate: "failed" for rate in choice.failed - set(choice.grid)}
    return ", ".join(f"{rate_text(rate, short=True)} {score}" for rate, score in sorted(shown.items())) + "."


def comment(choice: choose_lr.Choice) -> str:
    seeds = "seed 0" if choice.seeds == 1 else f"{choice.seeds} seeds"
    return (f"# lr {rate_text(choice.rate, short=True)} on {choice.model}, {RULE}\n"
            f"# (sweep=lr-search, python -m bench.results.write_rates: {choice.task}, {choice.n_val} validation items, "
            f"{seeds}):\n# {grid_text(choice)}\n")


def with_rate(text: str, model: str, rate: float, note: str) -> str:
    """The YAML text with `learning_rate_by_model.<model>: rate` added, and `note` above its `defaults:` line."""
    entry = f"  {model}: {rate_text(rate)}\n"
    if re.search(r"^learning_rate_by_model:\s*$", text, flags=re.M):
        text = re.sub(r"^(learning_rate_by_model:\s*\n(?:  .*\n)*)", lambda m: m.group(1) + entry, text, count=1,
                      flags=re.M)
    else:
        anchor = "learning_rate_chosen_on" if re.search(r"^learning_rate_chosen_on:", text, flags=re.M) else \
            "learning_rate"
        text = re.sub(rf"^({anchor}:.*\n)", lambda m: m.group(1) + "learning_rate_by_model:\n" + entry, text,
                      count=1, flags=re.M)
    return text.replace("\ndefaults:\n", "\n" + note + "defaults:\n", 1)


def reason_to_skip(choice: choose_lr.Choice, raw: dict) -> str | None:
    if not choice.confirmed:
        return "not confirmed: " + choice.line()
    if choice.at_edge:
        return f"at the edge of its grid ({', '.join(f'{r:.2g}' for r in sorted(choice.grid))}): extend the search"
    if choice.model in (raw.get("learning_rate_chosen_on") or []):
        return f"its learning_rate was chosen on {choice.model}"
    if choice.model in (raw.get("learning_rate_by_model") or {}):
        return f"already holds a rate for {choice.model}"
    return None


def runs_with(choice: choose_lr.Choice) -> bool:
    """Whether the search ran at the params the method runs with on the model (a search at another start or rank
    chose for that variant, not for the YAML)."""
    cfg = config.compose(f"method={choice.method}", f"model={choice.model}")
    return choice.params == json.dumps(config.params_in_key(choice.method, cfg.method.params), sort_keys=True)


def plan(folder: Path, model: str, method_dir: Path) -> list[tuple[str, str | None, str]]:
    """(method, reason it is left alone or None, new YAML text) for each choice on `model`."""
    found = []
    for choice in choose_lr.choose(folder):
        path = method_dir / f"{choice.method}.yaml"
        if choice.model != model or not path.is_file() or not runs_with(choice):
            continue
        text = path.read_text()
        reason = reason_to_skip(choice, yaml.safe_load(text) or {})
        found.append((choice.method, reason, text if reason else with_rate(text, model, choice.rate,
                                                                               comment(choice))))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.results.write_rates", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a learning-rate search's results folder (results/lr-search)")
    parser.add_argument("--model", required=True, help="the model whose chosen rates to write")
    parser.add_argument("--write", action="store_true", help="edit conf/method/*.yaml (default: only print)")
    args = parser.parse_args(argv)
    config.register(methods.registry())
    method_dir = config.CONF_DIR / "method"
    for method, reason, text in plan(Path(args.folder), args.model, method_dir):
        if reason:
            print(f"{method}: left alone: {reason}")
            continue
        rate = yaml.safe_load(text)["learning_rate_by_model"][args.model]
        print(f"{method}: learning_rate_by_model.{args.model} = {rate}" + ("" if args.write else " (not written)"))
        if args.write:
            (method_dir / f"{method}.yaml").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
