"""What each rank of a distributed trial does (bench.launch.rank starts it under torch's elastic agent): every rank
loads the model, applies the method and trains its share; then all gather their figures and the trained weights,
and rank 0 alone measures the gathered model (quality, latency, checkpoint, forgetting) as a one-process trial does.

The gathered model: DDP: every rank already holds the whole trained model; rank 0 keeps its own. FSDP: the full state
dict is gathered and loaded into the same model built afresh on rank 0, an ordinary module that evaluates, merges and
saves like a one-process trial's. The sharded model's outputs on the first test batch are compared with the gathered
model's (gathered_max_abs_diff), and a slice of them is kept beside the record (bench.distributed.gather).
"""

from __future__ import annotations

from pathlib import Path

import torch.distributed as dist

from bench.config import TrialConfig
from bench.distributed import figures as group_figures
from bench.distributed import gather
from bench.distributed.comm import CommProfiler, profiled_step
from bench.distributed.training import full_state_dict, is_sharded
from bench.trackers import protocol
from bench.trial.load import Setup, autocast, setup
from bench.trial.measuring import latency_batch, measure
from bench.trial.phases import Phases
from bench.trial.result import Measured
from bench.trial.train import Trained, add_mfu, train, training_memory


def on_rank(cfg: TrialConfig, phases: Phases, rank: int, run_dir: Path, progress: bool,
            trial_dir: Path | None) -> Measured | None:
    """Train this rank's share; on rank 0, the trial's figures and items (None on the others)."""
    found = Measured()
    ready = setup(cfg, phases, with_probe=rank == 0, found=found)  # the probe runs once, on rank 0
    with phases("train"):
        memory = training_memory(cfg, ready.device)
        step = profiled_step(cfg.train.max_steps, cfg.train.warmup_steps, cfg.train.measure_flops)
        comm = CommProfiler(step, ready.device, outside_memory=memory.paused)
        trained = train(cfg, ready, progress and rank == 0, [comm], memory)
        for untimed in comm.untimed_steps:  # profiled: their time, the profiler's overhead, stay out of the speed
            trained.speed.leave_out(untimed)
    energy = {"energy_key": phases.energy.key, "energy_source": phases.energy.source,
              "energy_joules_by_phase": dict(phases.energy.joules)}  # this rank's device, load to train
    with phases("gather"):
        model, group = gathered(cfg, trained, ready, rank, run_dir, {**comm.figures, **energy})
    if rank != 0:
        return None
    found.add(group).add(protocol.figures(trained.trackers))
    add_mfu(found.figures, ready.device, Path(cfg.cache_dir).expanduser(), processes=cfg.train.nproc)
    found.add(measure(cfg, ready, model, phases, trial_dir))
    found.add(own_phases(found.figures, phases.metrics()))
    return found


def own_phases(metrics: dict, own: dict) -> dict:
    """Rank 0's own phase figures, under the group's: the group's energy of the phases every rank ran (summed over
    their devices) stands, and rank 0's counter adds the phases only it ran (evaluate, latency, probe...)."""
    return {key: value for key, value in own.items() if key not in metrics}


def gathered(cfg: TrialConfig, trained: Trained, ready: Setup, rank: int, run_dir: Path, comm: dict):
    """(the whole trained model on rank 0, else None; the group's record metrics on rank 0, else None)."""
    trainer = trained.trainer
    mine = {**trained.memory.result(trainer.model, trainer.optimizer), **trained.speed.result(), **comm}
    per_rank = [None] * dist.get_world_size()
    dist.all_gather_object(per_rank, mine)
    batch, reference = _reference_outputs(cfg, trainer.model, ready)
    if not is_sharded(trainer.model):  # DDP: rank 0's own copy is the trained model
        model, difference = ready.model, 0.0
    else:
        state = full_state_dict(trainer)  # a collective: every rank takes part
        gather.release(trainer, ready)
        model = _rebuilt(cfg, state) if rank == 0 else None
        difference = _max_abs_diff(cfg, ready.device, model, batch, reference) if rank == 0 else None
    if rank != 0:
        return None, None
    gather.keep_outputs(run_dir, batch, reference)
    group = group_figures.group_metrics(per_rank, cfg.train.distributed)
    group["gathered_max_abs_diff"] = difference
    return model, group


def _reference_outputs(cfg: TrialConfig, model, ready: Setup):
    """Outputs of the model as trained (under FSDP a forward every rank takes part in) on the first test batch."""
    model.eval()
    batch = latency_batch(ready.data, ready.tokenizer, cfg, ready.device)
    with autocast(cfg, ready.device):
        return batch, gather.logits(model, batch)


def _rebuilt(cfg: TrialConfig, state: dict):
    """The trial's model built again on rank 0 (same base, same method) holding the gathered weights."""
    fresh = setup(cfg, with_probe=False).model
    fresh.load_state_dict(state)
    return fresh.eval()


def _max_abs_diff(cfg: TrialConfig, device, model, batch, reference) -> float:
    with autocast(cfg, device):  # the reference's precision
        return float((gather.logits(model, batch) - reference).abs().max())
