"""Every registered method on tiny random models, one table row each: what trains, what stays frozen, that it
learns, that its checkpoint restores it, that merging changes nothing, and that it starts as the identity.

pytest tests/test_methods.py -q        (about a minute on 2 CPU cores)

Adding a method: one row in TABLE (the test fails until every registered method has one).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

from peft.tuners.tuners_utils import BaseTunerLayer

from bench import methods, models
from bench.config import CONF_DIR, Unsupported, compose_raw
from bench.methods import prefix_tuning
from bench.cli.methods import markdown_table, ordered, rate_models
from bench.models.arch import inspect
from bench.trackers import storage
from conftest import trial_config

ALL = ("bert-cls", "llama-cls", "llama-gen")
LINEAR = ALL[:2]  # an encoder's and a decoder's linear layers: the LM head adds ~1 s a case and nothing to them
HEAD = r"(^|\.)(classifier|score)\.(modules_to_save\.default\.)?(weight|bias)$"  # trained by every method
QV = r"\.(query|value|q_proj|v_proj)\."
ATTENTION = r"\.(self\.(query|key|value)|attention\.output\.dense|self_attn\.[qkvo]_proj)\."
MLP = r"\.(intermediate\.dense|output\.dense|mlp\.(gate|up|down)_proj)\."
FFN_OUT = r"(mlp\.down_proj|(?<!attention)\.output\.dense)\."  # the projection leaving the feed-forward
NORM = r"(LayerNorm|layernorm|norm)\."


@dataclass
class Row:
    trains: str  # regex: a parameter trains if and only if its name matches (the head is added)
    params: dict = field(default_factory=dict)  # method.params for the tiny models
    identity: float | None = 1e-5  # untrained output equals the base model's within this; None: not promised
    edits_base: bool = False  # the method rewrites frozen base weights at init (PiSSA)
    refused: tuple = ()  # setups where the method must refuse with Unsupported (QLoRA without CUDA, BitFit on Llama)
    method: str = ""  # registry name, when the row id is a variant (prompt-tuning[text])
    setups: tuple = ALL  # where it runs; methods on linear layers skip llama-gen (the LM head is what it adds)


TABLE = {
    "full": Row(r"."),
    "bitfit": Row(r"\.bias$", refused=("llama-cls", "llama-gen")),  # Llama has no bias terms
    "layers-top-k": Row(r"\.layers?\.1\.", {"k": 1}),
    "layers-bottom-k": Row(r"\.layers?\.0\.", {"k": 1}),
    "components": Row(ATTENTION + r"(weight|bias)$"),
    "components[mlp]": Row(r"(?<!attention)" + MLP + r"(weight|bias)$", {"part": "mlp"}, method="components"),
    "ln-tuning": Row(NORM + r"ln_tuning_layers\.default\.(weight|bias)$"),
    "lora": Row(QV + r"lora_[AB]\.default\.weight$"),
    "rslora": Row(QV + r"lora_[AB]\.default\.weight$"),
    "dora": Row(QV + r"(lora_[AB]|lora_magnitude_vector)\.default\.weight$"),
    "pissa": Row(QV + r"lora_[AB]\.default\.weight$", identity=1e-4, edits_base=True),
    "olora": Row(QV + r"lora_[AB]\.default\.weight$", identity=1e-4, edits_base=True, setups=LINEAR),
    "lora-fa": Row(QV + r"lora_B\.default\.weight$", setups=LINEAR),
    "lora-plus": Row(QV + r"lora_[AB]\.default\.weight$", setups=LINEAR),
    "eva": Row(QV + r"lora_[AB]\.default\.weight$", setups=LINEAR),  # A's init: test_eva_...
    "corda": Row(QV + r"lora_[AB]\.default\.weight$", identity=1e-4, edits_base=True, setups=LINEAR),
    "adalora": Row(r"\.(query|key|value|dense|[a-z]+_proj)\.lora_[ABE]\.default$"),  # every linear layer
    "loha": Row(QV + r"hada_w[12]_[ab]\.default$"),
    "lokr": Row(QV + r"lokr_w[12](_[ab])?\.default$"),
    "vera": Row(QV + r"vera_lambda_[bd]\.default$"),
    "oft": Row(QV + r"oft_R\.default\.weight$"),
    "boft": Row(QV + r"boft_[Rs]\.default$"),
    "adamss": Row(QV + r"adamss_[AB]\.default\.\d+$", {"r": 8, "num_subspaces": 2}, setups=LINEAR),
    "beft": Row(r"\.(value|v_proj)\.beft_bias\.default$", setups=LINEAR),
    "c3a": Row(QV + r"c3a_kernel\.default$", {"block_size": 16}, identity=None, setups=LINEAR),  # xavier init
    "deft": Row(QV + r"deft_[PR]\.default$", setups=LINEAR),
    "delora": Row(QV + r"delora_(A|B|lambda)\.default$", {"r": 4}, setups=LINEAR),
    "fourierft": Row(QV + r"fourierft_spectrum\.default$", {"n_frequency": 64}, identity=None,
                      setups=LINEAR),  # random init
    "frod": Row(QV + r"frod_lambda_(l|s_values)\.default$", setups=LINEAR),
    "glora": Row(QV + r"glora_[A-E]\.default\.X[du]?$", setups=LINEAR),  # D, E: where biases are
    "gralora": Row(QV + r"gralora_[AB]\.default$", {"r": 8}, setups=LINEAR),
    "hira": Row(QV + r"hira_[AB]\.default$", {"r": 4}, setups=LINEAR),
    "hra": Row(QV + r"hra_u\.default$", setups=LINEAR),
    "lily": Row(QV + r"lily_(A|B|router)\.default\.weight$", {"r": 8}, setups=LINEAR),
    "miss": Row(QV + r"miss_block\.default$", {"r": 4}, setups=LINEAR),
    "osf": Row(QV + r"osf_svd_params\.default\.[USV]_low$", setups=LINEAR),
    "peanut": Row(QV + r"peanut_[AB]\.default\.weight$", {"r": 8}, setups=LINEAR),
    "psoft": Row(QV + r"psoft_R\.default\.(weight|vector_[ab])$", {"r": 8}, setups=LINEAR),
    "pvera": Row(QV + r"pvera_lambda_[bd]\.default$", {"r": 16}, setups=LINEAR),
    "randlora": Row(QV + r"randlora_(lambda|gamma)\.default$", {"r": 4}, setups=LINEAR),
    "road": Row(QV + r"road_(theta|alpha)\.default$", {"group_size": 8}, setups=LINEAR),
    "shira": Row(QV + r"shira_weight\.default$", {"r": 4}, setups=LINEAR),
    "paca": Row(QV + r"paca_delta\.default$", {"r": 4}, setups=LINEAR),
    "supertuning": Row(QV + r"supertuning_values\.default$", {"sparsity": 0.9}, setups=LINEAR),
    "tinylora": Row(QV + r"tinylora_v\.default\.\d+$", {"u": 8}, setups=LINEAR),
    "trainable-tokens": Row(r"trainable_tokens_delta\.default$"),
    "unilora": Row(QV + r"unilora_theta_d\.default$", {"theta_d_length": 64}, identity=None,
                    setups=LINEAR),  # random vector
    "vblora": Row(QV + r"vblora_(logits_[AB]|vector_bank)\.default$", {"vector_length": 16, "num_vectors": 32},
                  identity=None, setups=LINEAR),  # random bank
    "waveft": Row(QV + r"waveft_spectrum\.default$", {"n_frequency": 64}, setups=LINEAR),
    "shadow": Row(r"shadow_", refused=("bert-cls",), identity=None),
    "peft": Row(QV + r"hra_u\.default$", {"peft_type": "HRA"}, setups=LINEAR),
    "peft[fourierft]": Row(QV + r"fourierft_spectrum\.default$", {"peft_type": "FOURIERFT",
                                                                   "config": {"n_frequency": 64}}, identity=None,
                           method="peft", setups=LINEAR),
    "peft[ln_tuning]": Row(NORM + r"ln_tuning_layers\.default\.(weight|bias)$", {"peft_type": "LN_TUNING"},
                           method="peft", setups=LINEAR),  # norm layers, not LoRA's default targets
    "peft[prefix_tuning]": Row(r"^prompt_encoder\.default\.embedding\.weight$", {
        "peft_type": "PREFIX_TUNING", "config": {"num_virtual_tokens": 4}}, identity=None, method="peft"),
    "qlora": Row(r"lora_[AB]\.default\.weight$", refused=ALL),  # tiny models sit on the CPU; see test_qlora_on_gpu
    "adapter-houlsby": Row(r"\.adapter\.(down|up)\.(weight|bias)$"),
    "adapter-pfeiffer": Row(FFN_OUT + r"adapter\.(down|up)\.(weight|bias)$"),
    "adapter-parallel": Row(FFN_OUT + r"adapter\.(down|up)\.(weight|bias)$"),
    "ia3": Row(r"(\.(key|value|k_proj|v_proj)\.|" + FFN_OUT + r")ia3_l\.default$"),
    "prompt-tuning": Row(r"^prompt_encoder\.default\.embedding\.weight$", identity=None),
    "prompt-tuning[text]": Row(r"^prompt_encoder\.default\.embedding\.weight$", {"init": "text"}, identity=None,
                               method="prompt-tuning"),
    "prefix-tuning": Row(r"^prompt_encoder\.default\.embedding\.weight$", identity=None),
    "prefix-tuning[zero]": Row(r"^prompt_encoder\.default\.embedding\.weight$", {"init": "zero"}, identity=None,
                               method="prefix-tuning"),
    "prefix-tuning[text]": Row(r"^prompt_encoder\.default\.embedding\.weight$", {"init": "text"}, identity=None,
                               method="prefix-tuning", refused=("bert-cls",)),  # an encoder caches no keys
    "cartridge": Row(r"^prompt_encoder\.default\.trainable_embedding$", {"num_virtual_tokens": 4}, identity=None),
    "adaption-prompt": Row(r"\.self_attn\.adaption_(prompt|gate)$", {"adapter_len": 4, "adapter_layers": 1},
                           refused=("bert-cls",)),
    "p-tuning": Row(r"^prompt_encoder\.default\.(embedding\.weight|mlp_head\.\d\.(weight|bias))$", identity=None),
}
SETUPS = dict(zip(ALL, [("tiny-bert", "bbc-topic"), ("tiny-llama", "bbc-topic"), ("tiny-llama", "bbc-headline")]))
STEPS, LR = 5, 1e-2


def method_of(row_id: str) -> str:
    return TABLE[row_id].method or row_id


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls run ~10x faster on one thread than on two contended ones (the machine is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bases():
    """(pristine model, arch, batch) per setup, loaded once; each case works on a deep copy."""
    loaded = {}

    def get(setup: str):
        if setup not in loaded:
            model_name, task_name = SETUPS[setup]
            cfg = trial_config(f"model={model_name}", f"task={task_name}", fast=False)
            cache = Path(cfg.cache_dir).expanduser()
            kind = models.kind(models.load_config(cfg.model, cache))
            torch.manual_seed(0)
            labels = 5 if cfg.task.kind == "classification" else None
            model, tokenizer = models.load(cfg.model, cfg.task.kind, labels, cache)
            arch = inspect(model, kind, cfg.task.kind, tokenizer)
            generator = torch.Generator().manual_seed(0)
            ids = torch.randint(1000, 5000, (8, 12), generator=generator)  # no special or pad tokens
            labels = torch.arange(8) % 5 if cfg.task.kind == "classification" else ids.clone()
            batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
            loaded[setup] = (model.eval(), arch, batch)
        return loaded[setup]

    return get


def forward(model, batch, loss: bool = True):
    with torch.no_grad():
        out = model(**(batch if loss else {k: v for k, v in batch.items() if k != "labels"}))
    return out.logits.float(), float(out.loss) if loss else None


@pytest.mark.parametrize("path", sorted((CONF_DIR / "method").glob("*.yaml")), ids=lambda p: p.stem)
def test_method_yaml_keeps_only_what_its_dataclass_does_not_say(path):
    """Defaults live in the method's dataclass, which is the schema of `method.params`: the YAML repeats none of
    them, and composing it gives every field with its default."""
    values = yaml.safe_load(path.read_text())
    config_cls = methods.get(values["name"]).config_cls
    defaults = config_cls()
    repeated = {k: v for k, v in (values.get("params") or {}).items() if getattr(defaults, k, object()) == v}
    assert not repeated, f"{path.name} repeats its dataclass's defaults: {repeated}"
    assert f"/schema/params/{values['name']}@params" in values["defaults"]
    composed = compose_raw(f"method={path.stem}")["method"]["params"]
    given = {k: v for k, v in (values.get("params") or {}).items() if not str(v).startswith("${")}  # per model
    assert composed == dataclasses.asdict(defaults) | given


ABOVE_METHODS = ("probes", "tasks", "results", "trackers", "trial", "sweep", "report", "serve", "launch", "cli")


@pytest.mark.parametrize("path", sorted(Path(methods.__file__).parent.glob("*.py")), ids=lambda p: p.stem)
def test_a_method_module_imports_nothing_above_methods(path):
    """Methods sit below probes, tasks, results, trackers and the trial: what they need is passed in (the training
    batches reach a data-driven init through the callbacks hook). Any import counts, at module level or inside a
    function."""
    import ast

    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    above = sorted(name for name in imported if name.split(".")[:2] in [["bench", layer] for layer in ABOVE_METHODS])
    assert not above, f"{path.name} imports {above}"


def test_families_sort_in_taxonomy_order_and_unknown_ones_last():
    from bench.common.families import FAMILIES, family_rank, ordered_families

    assert sorted(["adapter", "old", "full"], key=family_rank) == ["full", "adapter", "old"]
    assert ordered_families(["soft-prompt", "zeta", "selective", "alpha", "selective"]) == [
        "selective", "soft-prompt", "alpha", "zeta"]
    assert methods.FAMILIES is FAMILIES


def test_registry_has_every_family_and_a_test_row_per_method():
    registered = methods.registry()
    assert {m.family for m in registered.values()} == set(methods.FAMILIES)
    assert set(registered) == {method_of(r) for r in TABLE}, "every method needs a row in TABLE"
    table = markdown_table(ordered(), None, None)  # README's method table: one row per method
    assert all(f"| `{name}` | {m.family} | {m.summary} |" in table for name, m in registered.items())


def test_the_listing_says_on_which_models_each_rate_was_chosen():
    """From each YAML: the models its search ran on, then those with their own rate; "-" for a rate chosen nowhere
    (the generic path's default); every method's rate but the generic path's and QLoRA's was chosen somewhere."""
    assert rate_models("frod") == "minilm-l6"
    assert rate_models("lora") == "minilm-l6, smollm2-135m, gemma3-270m"
    assert rate_models("adaption-prompt") == "smollm2-135m"
    assert rate_models("peft") == "-"
    assert {name for name in methods.registry() if rate_models(name) == "-"} == {"peft", "qlora"}


@pytest.mark.parametrize("row_id,setup", [(r, s) for r in TABLE for s in TABLE[r].setups],
                         ids=lambda value: value)
def test_method(row_id, setup, bases, tmp_path):
    row, method = TABLE[row_id], methods.get(method_of(row_id))
    pristine, arch, batch = bases(setup)
    cfg = method.build_config(row.params)
    model = copy.deepcopy(pristine)
    base_before = {name: p.detach().clone() for name, p in model.named_parameters()}
    base_params = dict(model.named_parameters())
    base_logits, _ = forward(pristine, batch)

    torch.manual_seed(0)
    if setup in row.refused:
        with pytest.raises(Unsupported):
            method.apply(model, cfg, arch)
        return
    model = method.apply(model, cfg, arch).eval()
    callbacks = method.callbacks(model, cfg, STEPS) if method.callbacks else []
    for callback in callbacks:  # as the Trainer calls it: data-driven inits (EVA, CorDA) read training batches
        callback.on_train_begin(None, None, None, train_dataloader=[batch] * 2)

    # trainable parameters are exactly the intended set
    trains = re.compile(f"{row.trains}|{HEAD}")
    names = [n for n, _ in model.named_parameters()]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in names if trains.search(n)}
    assert any(not re.search(HEAD, n) for n in trainable), "only the head trains"

    # starts as the identity where promised; PiSSA's split W = W_res + BA reproduces W to float rounding
    logits, loss_before = forward(model, batch)
    if row.identity is not None:
        assert (logits - base_logits).abs().max() <= row.identity * max(1.0, float(base_logits.abs().max()))
    if row_id == "prompt-tuning[text]":
        embeddings = model.get_input_embeddings().weight
        text_ids = arch.tokenizer(cfg.init_text)["input_ids"]
        prompt = model.prompt_encoder["default"].embedding.weight
        assert all(any(torch.equal(v, embeddings[i]) for i in text_ids) for v in prompt)
    if row_id == "prefix-tuning[zero]":
        assert not model.prompt_encoder["default"].embedding.weight.any()
    if row_id == "prefix-tuning[text]":  # the prefix is the base's own cache: the input after it reads as after text
        assert_prefix_acts_as_its_text(model, pristine, arch, batch, cfg)

    # a few plain optimizer steps on a fixed batch; the loss (dropout off) goes down
    frozen_after_apply = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = make_optimizer(method, model, cfg)
    model.train()
    for step in range(STEPS):
        model(**batch).loss.backward()
        state = types.SimpleNamespace(global_step=step)
        for callback in callbacks:  # as the Trainer calls them: before and after step(), before zero_grad()
            callback.on_pre_optimizer_step(None, state, None)
        optimizer.step()
        for callback in callbacks:
            callback.on_optimizer_step(None, state, None)
        optimizer.zero_grad()
    model.eval()
    logits, loss_after = forward(model, batch)
    assert loss_after < loss_before

    # frozen weights bit-identical: after training, and (unless the method rewrites them at init) to the base
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen_after_apply[name]), name
    if not row.edits_base:
        for name, p in base_params.items():
            if not p.requires_grad:
                assert torch.equal(p, base_before[name]), name

    # what the storage tracker saves restores the same model
    storage.save(model, tmp_path)
    restored = restore(method, cfg, pristine, arch, tmp_path).eval()
    assert torch.allclose(forward(restored, batch, loss=False)[0], logits, atol=1e-5)

    # mergeable methods: same outputs merged, and nothing left of the method in the merged model
    if method.merges:
        merged = model.merge_and_unload()
        merged_logits, _ = forward(merged, batch, loss=False)
        assert (merged_logits - logits).abs().max() <= 1e-4 * max(1.0, float(logits.abs().max()))
        assert not any(isinstance(m, BaseTunerLayer) for m in merged.modules())


def make_optimizer(method, model, cfg, lr: float = LR):
    """The method's own optimizer where it has one (as the trial hands it to the Trainer), else AdamW."""
    if method.optimizer:
        return method.optimizer(model, cfg, lr, 0.0)
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)


def test_lora_plus_optimizer_is_peft_s_with_b_at_lr_ratio(bases):
    """LoRA+ trains with peft's optimizer: A (and the head's weight) at the rate, B at rate x lr_ratio."""
    pristine, arch, _ = bases("bert-cls")
    method = methods.get("lora-plus")
    cfg = method.build_config({"lr_ratio": 4.0})
    model = method.apply(copy.deepcopy(pristine), cfg, arch)
    optimizer = method.optimizer(model, cfg, LR, 0.0)
    rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert set(rate) == {id(p) for p in trainable.values()}, "every trainable tensor is stepped, nothing else"
    for name, p in trainable.items():
        if ".lora_B." in name:
            assert rate[id(p)] == LR * 4.0, name
        elif ".lora_A." in name:
            assert rate[id(p)] == LR, name


def test_lora_fa_steps_b_along_the_projected_gradient(bases):
    """peft's LoRA-FA optimizer: A stays at its init; B's first AdamW step follows grad_B (A Aᵀ)⁻¹ / scale², not
    grad_B (plain AdamW's first step is lr x the sign of what it is given)."""
    pristine, arch, batch = bases("bert-cls")
    method = methods.get("lora-fa")
    cfg = method.build_config({})
    torch.manual_seed(0)
    model = method.apply(copy.deepcopy(pristine), cfg, arch).train()
    optimizer = method.optimizer(model, cfg, LR, 0.0)
    weights = dict(model.named_parameters())
    b_names = [n for n in weights if ".lora_B." in n]
    a_of = {n: weights[n.replace(".lora_B.", ".lora_A.")] for n in b_names}
    a_before = {n: a.detach().clone() for n, a in a_of.items()}
    model(**batch).loss.backward()
    grads = {n: weights[n].grad.clone() for n in b_names}  # B starts at 0, so its step is all the update
    optimizer.step()
    scale = cfg.alpha / cfg.r
    flips = 0
    for name in b_names:
        a = a_before[name]
        projected = grads[name] @ torch.linalg.pinv(a @ a.T) / scale**2
        clear = projected.abs() > 1e-2 * projected.abs().max()  # bf16 rounding may flip the sign of tiny entries
        step = weights[name].detach()
        assert torch.equal(a_of[name], a), "A moved"
        assert torch.equal(torch.sign(step[clear]), -torch.sign(projected[clear])), name
        flips += int((torch.sign(step) != -torch.sign(grads[name])).sum())
    assert flips, "B stepped along its raw gradient: no projection"


@pytest.mark.parametrize("setup", ["bert-cls", "llama-gen"])
def test_eva_initialises_a_from_the_data(setup, bases):
    """At the start of training EVA replaces A, in place, by orthonormal singular vectors of the layer inputs."""
    pristine, arch, batch = bases(setup)
    method = methods.get("eva")
    model = method.apply(copy.deepcopy(pristine), method.build_config({}), arch)
    a_weights = {n: p for n, p in model.named_parameters() if ".lora_A." in n}
    before = {n: p.detach().clone() for n, p in a_weights.items()}
    (callback,) = method.callbacks(model, method.build_config({}), STEPS)
    callback.on_train_begin(None, None, None, train_dataloader=[batch] * 4)
    after = dict(model.named_parameters())
    for name, weight in a_weights.items():
        assert after[name] is weight, "replaced, not filled in place: the optimizer would train a stale tensor"
        assert not torch.allclose(weight, before[name])
        gram = weight.detach() @ weight.detach().T
        assert torch.allclose(gram, torch.eye(len(gram)), atol=1e-4)


@pytest.mark.parametrize("mode", ["ipm", "kpm"])
def test_corda_moves_the_data_weighted_components_into_the_adapter(mode, bases, tmp_path):
    """At the start of training CorDA fills A and B in place from the covariance-weighted SVD and leaves W - s·B·A
    in the frozen base; the adapter it stores is the conversion to plain LoRA of rank 2r, on the original base."""
    pristine, arch, batch = bases("bert-cls")
    method = methods.get("corda")
    cfg = method.build_config({"mode": mode})
    model = method.apply(copy.deepcopy(pristine), cfg, arch)
    weights = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in weights.items()}
    (callback,) = method.callbacks(model, cfg, STEPS)
    callback.on_train_begin(None, None, None, train_dataloader=[batch] * 2)
    originals = dict(pristine.named_parameters())
    for name in [n for n in weights if ".lora_A." in n]:
        a, b = weights[name], weights[name.replace(".lora_A.", ".lora_B.")]
        assert dict(model.named_parameters())[name] is a, "replaced, not filled in place"
        assert not torch.allclose(a, before[name]) and b.abs().max() > 0
        layer = name.split(".lora_A.")[0]
        residual = weights[f"{layer}.base_layer.weight"]
        original = originals[layer.removeprefix("base_model.model.") + ".weight"]
        assert torch.allclose(residual + (cfg.alpha / cfg.r) * b @ a, original, atol=1e-5)
    storage.save(model, tmp_path)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert (saved["r"], saved["init_lora_weights"]) == (2 * cfg.r, True)


def test_corda_calibrates_an_encoder_decoder():
    """An encoder-decoder forwards only with a target: each calibration row takes its own, without the -100 padding."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    pristine = T5ForConditionalGeneration(T5Config(vocab_size=200, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                                   num_heads=4, decoder_start_token_id=0, pad_token_id=0)).eval()
    arch = inspect(pristine, "seq2seq", "generation")
    generator = torch.Generator().manual_seed(0)
    ids, labels = (torch.randint(5, 200, shape, generator=generator) for shape in [(4, 10), (4, 6)])
    labels[0, 4:] = -100
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    method = methods.get("corda")
    cfg = method.build_config({})
    model = method.apply(copy.deepcopy(pristine), cfg, arch).eval()
    (callback,) = method.callbacks(model, cfg, STEPS)
    callback.on_train_begin(None, None, None, train_dataloader=[batch] * 2)
    assert all(p.abs().max() > 0 for n, p in model.named_parameters() if ".lora_B." in n)
    assert torch.allclose(forward(model, batch)[0], forward(pristine, batch)[0], atol=1e-4)


def assert_prefix_acts_as_its_text(model, pristine, arch, batch, cfg):
    """Logits with the text-initialised prefix equal the base model's on the init text's tokens followed by the
    input (the input's positions start after the prefix in both)."""
    ids = arch.tokenizer(cfg.init_text, add_special_tokens=False)["input_ids"]
    ids = (ids * cfg.num_virtual_tokens)[:cfg.num_virtual_tokens]
    first = {k: v[:1] for k, v in batch.items() if k != "labels"}
    length = int(first["attention_mask"].sum())
    inputs = torch.cat([torch.tensor([ids]), first["input_ids"][:, :length]], dim=1)
    with torch.no_grad():
        expected = pristine(input_ids=inputs).logits
        got = model(input_ids=first["input_ids"][:, :length], attention_mask=first["attention_mask"][:, :length]).logits
    expected = expected[:, -length:] if got.dim() == 3 else expected  # a class head pools the last token
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


@pytest.mark.parametrize("method,params,message", [
    ("corda", {"mode": "pca"}, r"`method.params.mode` \('pca'\) must be ipm or kpm"),
    ("corda", {"init": "pissa"}, r"`method.params.init` \('pissa'\) must be true"),
    ("corda", {"calibration_batches": 0}, r"`method.params.calibration_batches` \(0\) must be an integer >= 1"),
    ("lora-fa", {"use_dora": True}, r"`method.params.use_dora` \(True\) must be false"),
    ("prefix-tuning", {"init": "words"}, r"`method.params.init` \('words'\) must be random or zero or text"),
    ("prefix-tuning", {"init": "text", "projection": True}, r"`method.params.init` \('text'\) sets the prefix"),
])
def test_bad_method_params_are_named(method, params, message):
    from bench import ConfigError

    with pytest.raises(ConfigError, match=message):
        methods.get(method).build_config(params)


def test_calibration_batches_are_not_counted_as_training_steps():
    """A data-driven init's batches leave the counting collator's log as they found it."""
    from bench.methods._calibration import uncounted

    log = ["step"]
    collate = types.SimpleNamespace(data_collator=types.SimpleNamespace(batches=log))
    with uncounted(types.SimpleNamespace(collate_fn=collate)):
        log += ["calibration", "calibration"]
    assert log == ["step"]


def restore(method, cfg, pristine, arch, folder: Path):
    """peft checkpoints through peft's loader; the rest by re-applying the method and loading the saved tensors."""
    from peft import PeftModel
    from safetensors.torch import load_file

    base = copy.deepcopy(pristine)
    peft_type = cfg.peft_type if method.name == "peft" else method.peft_type
    if peft_type in ("PREFIX_TUNING", "CARTRIDGE") and arch.task_kind == "classification":
        prefix_tuning.accept_past_key_values(base)  # see bench/methods/prefix_tuning.py
    if (folder / "adapter_config.json").exists():
        return PeftModel.from_pretrained(base, folder)
    model = method.apply(base, cfg, arch)
    saved = load_file(str(folder / "model.safetensors"))
    missing, unexpected = model.load_state_dict(saved, strict=False)
    assert not unexpected and set(saved) <= set(model.state_dict())
    return model


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or __import__("importlib").util.find_spec("bitsandbytes") is None,
                    reason="QLoRA needs a CUDA device and bitsandbytes")
def test_qlora_on_gpu(bases):
    """The 4-bit path: blocks' linear layers quantized, only LoRA trains, the 4-bit base stays put, loss goes down."""
    import bitsandbytes as bnb

    pristine, arch, batch = bases("llama-gen")
    method = methods.get("qlora")
    model = method.apply(copy.deepcopy(pristine).to("cuda", torch.bfloat16), method.build_config({}), arch)
    batch = {k: v.cuda() for k, v in batch.items()}
    assert all(isinstance(model.base_model.model.get_submodule(n).base_layer, bnb.nn.Linear4bit)
               for n in arch.attention + arch.mlp)
    trainable = [p for n, p in model.named_parameters()
                 if p.requires_grad and re.search(r"lora_[AB]\.default\.weight$", n)]
    assert trainable and len(trainable) == sum(p.requires_grad for p in model.parameters())
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    _, loss_before = forward(model.eval(), batch)
    optimizer = torch.optim.AdamW(trainable, lr=LR)
    model.train()
    for _ in range(STEPS):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert forward(model.eval(), batch)[1] < loss_before
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if not p.requires_grad)
