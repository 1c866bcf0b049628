"""`peft-bench-methods`: every registered method with its family, whether it merges, whether peft serves it in
mixed batches, the peft type it runs, and what it does; then every member of peft.PeftType: run here, or why not.

  peft-bench-methods                                   # the list
  peft-bench-methods --model minilm-l6                 # + trainable parameters on that model, YAML defaults
  peft-bench-methods --model smollm2-135m --task bbc-headline
  peft-bench-methods --model minilm-l6 --markdown --output README_methods.md   # README's method table
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from pathlib import Path

from bench import config, methods, models, tasks
from bench.common.families import family_rank
from bench.methods import _peft_types
from bench.config import ConfigError, Unsupported


def overhead(method: methods.Method) -> str:
    """Inference cost the method leaves behind, after merging where it can merge."""
    if method.family in ("full", "selective") and not method.merges and method.peft_type is None:
        return "none (weights edited in place)"
    if method.merges:
        return "none once merged"
    if method.family == "soft-prompt":
        return "virtual tokens on every input"
    return "extra modules in the forward pass"


def ordered() -> list[methods.Method]:
    return sorted(methods.registry().values(), key=lambda m: (family_rank(m.family), m.name))


def trainable(names: list[str], model_name: str, task_name: str) -> dict[str, dict | str]:
    """Per method: params.count on the model with the method's YAML defaults, or the reason it is refused."""
    # imported only to count parameters: they import torch and transformers, which the table alone does not need
    import transformers

    from bench.models.arch import inspect
    from bench.trackers import params

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore")  # peft and transformers warn per method; the table is the output here
    cfg = compose(model_name, task_name, names[0])
    cache = Path(cfg.cache_dir).expanduser()
    kind = models.kind(models.load_config(cfg.model, cache))
    models.check_task_fits(kind, cfg.task.kind, cfg.model, cfg.task.name)
    labels = len(tasks.label_names(cfg.task, tasks.raw_splits(cfg.task, Path(cfg.cache_dir).expanduser()))) or None
    base, tokenizer = models.load(cfg.model, cfg.task.kind, labels, cache)
    arch = inspect(base, kind, cfg.task.kind, tokenizer)
    results = {}
    for name in names:
        method = methods.get(name)
        try:
            method_cfg = method.build_config(compose(model_name, task_name, name).method.params)
            results[name] = params.count(method.apply(copy.deepcopy(base), method_cfg, arch))
        except Unsupported as error:
            results[name] = f"refused: {error}"
    return results


def compose(model_name: str, task_name: str, method_name: str):
    return config.compose(f"model={model_name}", f"task={task_name}", f"method={method_name}")


def fraction(count, with_params: bool = True) -> str:
    if isinstance(count, str):
        return "refused"
    return f"{count['trainable_fraction']:.3%}" + (f" ({count['trainable_params']:,})" if with_params else "")


def refusals(counts: dict | None) -> list[str]:
    return [f"{name}: {reason.removeprefix('refused: ')}" for name, reason in (counts or {}).items()
            if isinstance(reason, str)]


def rate_models(name: str) -> str:
    """The models whose validation split chose the method's learning rate (its YAML's learning_rate_chosen_on, then
    learning_rate_by_model's models); "-" where none did."""
    return ", ".join(config.chosen_rates(name)) or "-"


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def text_table(rows: list[methods.Method], counts: dict | None) -> str:
    lines = []
    for m in rows:
        extra = f"{fraction(counts[m.name]):<24}" if counts else ""
        lines.append(f"{m.name:<18}{m.family:<20}{yes(m.merges):<8}{extra}{yes(m.mixed_batches):<7}"
                     f"{m.peft_type or '-':<18}{rate_models(m.name):<39}{m.summary}")
    header = (f"{'method':<18}{'family':<20}{'merges':<8}" + (f"{'trainable':<24}" if counts else "")
              + f"{'mixed':<7}{'peft type':<18}{'rate chosen on':<39}what it does")
    return "\n".join([header] + lines + refusals(counts))


def peft_type_lines(counts: dict | None) -> list[tuple[str, str]]:
    """(peft type, status) for every member of peft.PeftType: the methods that run it (with the first one's
    trainable fraction on the model), or why it cannot run here."""
    lines = []
    for peft_type, status in _peft_types.status().items():
        if status is None:
            lines.append((peft_type, "NOT PLACED: neither run by a method nor listed with a reason"))
        elif "reason" in status:
            lines.append((peft_type, f"skipped: {status['reason']}"))
        else:
            own = peft_type.lower().replace("_", "-")  # the plain method where there is one (lora, not dora)
            first = own if own in status["methods"] else status["methods"][0]
            trained = f"; {first}: {fraction(counts[first], with_params=False)} trainable" if counts else ""
            lines.append((peft_type, f"runs: {', '.join(status['methods'])}{trained}"))
    return lines


def peft_type_text(counts: dict | None) -> str:
    lines = peft_type_lines(counts)
    running = sum(status.startswith("runs") for _, status in lines)
    head = f"\npeft.PeftType: {len(lines)} types, {running} run here, {len(lines) - running} do not"
    return "\n".join([head] + [f"{name:<25}{status}" for name, status in lines])


def markdown_table(rows: list[methods.Method], counts: dict | None, model_name: str | None) -> str:
    trained = [f"trainable on {model_name}"] if counts else []
    head = ["method", "family", "what it does", "merges", "inference overhead", "mixed batches", "peft type",
            "rate chosen on"] + trained
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in rows:
        cells = [f"`{m.name}`", m.family, m.summary, yes(m.merges), overhead(m), yes(m.mixed_batches),
                 f"`{m.peft_type}`" if m.peft_type else "-", rate_models(m.name)]
        if counts:
            cells.append(fraction(counts[m.name], with_params=False))
        lines.append("| " + " | ".join(cells) + " |")
    rates = ("Rate chosen on: the models whose validation split chose the method's learning rate "
             "(`sweep=lr-search`); elsewhere it runs at the first one's rate, and the report marks its quality ‡. ")
    note = (f"\n{rates}Trainable fractions: `peft-bench-methods --model {model_name}`, each method at its "
            "`conf/method/` defaults with the classification head. Generated by `peft-bench-methods --markdown`.\n"
            ) if counts else f"\n{rates}Generated by `peft-bench-methods --markdown`.\n"
    refused = "".join(f"\n- {line}" for line in refusals(counts))
    skipped = "".join(f"\n- `{name}`: {status.removeprefix('skipped: ')}" for name, status in peft_type_lines(None)
                      if not status.startswith("runs"))
    return ("\n".join(lines) + "\n" + note + (f"\nRefused here:{refused}\n" if refused else "")
            + f"\npeft types that do not run here:{skipped}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="peft-bench-methods", description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--model", help="also count trainable parameters on this model (a name in conf/model/)")
    parser.add_argument("--task", default="bbc-topic", help="task whose head the model gets (default: bbc-topic)")
    parser.add_argument("--markdown", action="store_true", help="print README's method table")
    parser.add_argument("--output", help="write the table to this file instead of printing it")
    args = parser.parse_args(argv)
    rows = ordered()
    try:
        if args.model:
            config.check_group_choices([f"model={args.model}", f"task={args.task}"])
        counts = trainable([m.name for m in rows], args.model, args.task) if args.model else None
    except ConfigError as error:
        sys.exit(f"peft-bench-methods: {error}")
    table = markdown_table(rows, counts, args.model) if args.markdown else (text_table(rows, counts) + "\n"
                                                                            + peft_type_text(counts))
    if args.output:
        Path(args.output).write_text(table + ("" if table.endswith("\n") else "\n"))
        print(f"peft-bench-methods: wrote {args.output}")
    else:
        print(table)


if __name__ == "__main__":
    main()
