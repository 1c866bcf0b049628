"""Request streams over K adapters, served four ways: throughput and per-request latency (p50, p90).

Streams (which adapter each of `serve.requests` requests asks for): uniform, Zipf (adapter of popularity rank r
asked with probability ~ 1 / r^serve.zipf_exponent) and round-robin (every request another adapter: the worst case
for swapping). Requests arrive in windows of `serve.batch_size` and each window is answered before the next:
  mixed    one forward of the whole window, each row with its own adapter (peft's `adapter_names=`, LoRA family)
  single   the window split into one batch per adapter, in order of arrival, switching (set_adapter) between them
  merged   as single, but the adapter is merged into the base weights: a switch is unmerge + merge
  base     the base model alone (a copy kept from before adapters were attached), one forward per window: what
           serving no task costs, timed in the same rounds
A request's latency runs from the start of its window to the end of the forward that answers it; throughput is
requests over the seconds all windows took. Every stream x mode runs `serve.repeats` rounds. Within a round the
modes that leave the weights alone (mixed, single, base) answer each window in turn, so a burst of load from
another process falls on all of them alike; merged weights would change what the others compute, so the merged
mode serves its own pass of the stream right after. Throughput is the median over rounds, latency percentiles are
over all requests of all rounds.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from bench.serve.config import ServeConfig
from bench.serve.host import NotAvailable
from bench.serve.load import synchronize
from bench.trackers.latency import percentiles  # one percentile function for training and serving
from bench.trackers.merge import tolerance

ZIPF_SEED_OFFSET = 7  # streams draw from the trial seed plus a fixed offset per stream, so each is reproducible


def stream(kind: str, n: int, k: int, exponent: float, seed: int) -> list[int]:
    """The adapter index each of n requests asks for."""
    if kind == "round-robin":
        return [index % k for index in range(n)]
    rng = np.random.default_rng(seed + ZIPF_SEED_OFFSET * (kind == "zipf"))
    if kind == "uniform":
        return rng.integers(0, k, size=n).tolist()
    weights = 1.0 / np.arange(1, k + 1) ** exponent
    return rng.choice(k, size=n, p=weights / weights.sum()).tolist()


def requests(texts: list[str], tokenizer, serve: ServeConfig, device) -> dict:
    """`serve.requests` tokenized requests, each padded to `serve.max_length`: rows of one tensor per input."""
    texts = [texts[index % len(texts)] for index in range(serve.requests)]
    batch = tokenizer(texts, truncation=True, max_length=serve.max_length, padding="max_length", return_tensors="pt")
    return {key: value.to(device) for key, value in batch.items()}


def rows(pool: dict, indices: list[int]) -> dict:
    index = torch.tensor(indices, device=next(iter(pool.values())).device)
    return {key: value.index_select(0, index) for key, value in pool.items()}


def _groups(ids: list[int]) -> list[tuple[int, list[int]]]:
    """(adapter, positions in the window) in order of first arrival."""
    order: dict[int, list[int]] = {}
    for position, adapter in enumerate(ids):
        order.setdefault(adapter, []).append(position)
    return list(order.items())


class BaseServer:
    """The base model alone (a copy kept from before any adapter was attached): one forward per window."""

    def __init__(self, model, device):
        self.model, self.device = model.eval(), device

    def window(self, pool: dict, requests: list[int], ids: list[int]) -> list[float]:
        started = time.perf_counter()
        self.model(**rows(pool, requests))
        synchronize(self.device)
        return [time.perf_counter() - started] * len(ids)

    def close(self) -> None:
        pass


class Server:
    """Serves windows of requests one way (a mode), keeping which adapter is active or merged between windows."""

    def __init__(self, host, mode: str, device):
        self.host, self.mode, self.device = host, mode, device
        self.merged = None
        if mode == "mixed":
            host.check_mixed()
        if mode == "merged":
            host.check_merge()

    def window(self, pool: dict, requests: list[int], ids: list[int]) -> list[float]:
        """Answer one window (rows `requests` of the pool, asking for adapters `ids`); seconds from its start to each
        request's answer. Gathering the rows of a batch is part of serving it, so it is inside the clock."""
        names = self.host.names
        started = time.perf_counter()
        if self.mode == "mixed":
            self.host.forward(rows(pool, requests), [names[i] for i in ids])
            synchronize(self.device)
            return [time.perf_counter() - started] * len(ids)
        done = [0.0] * len(ids)
        for adapter, positions in _groups(ids):
            self._switch(names[adapter])
            self.host.forward(rows(pool, [requests[p] for p in positions]))
            synchronize(self.device)
            for position in positions:
                done[position] = time.perf_counter() - started
        return done

    def _switch(self, name: str) -> None:
        if self.mode == "single":
            if self.host.active != name:
                self.host.activate(name)
        elif self.merged != name:
            if self.merged is not None:
                self.host.unmerge()
            self.host.merge(name)
            self.merged = name

    def close(self) -> None:
        if self.merged is not None:
            self.host.unmerge()
            self.merged = None


def _windows(n: int, batch_size: int) -> list[list[int]]:
    return [list(range(start, min(start + batch_size, n))) for start in range(0, n, batch_size)]


def serve_stream(answer, pool: dict, ids: list[int], batch_size: int) -> tuple[list[float], float]:
    """(each request's latency in seconds, the seconds all windows took) for one pass over a stream."""
    return serve_side_by_side({"one": answer}, pool, ids, batch_size)["one"]


def serve_side_by_side(answers: dict, pool: dict, ids: list[int], batch_size: int) -> dict:
    """One pass over a stream per server, window by window: each window is answered by every server in turn (the
    order rotating from window to window), so a burst of load from another process falls on all of them alike.
    {name: (each request's latency in seconds, the seconds all its windows took)}."""
    results = {name: ([], 0.0) for name in answers}
    names = list(answers)
    for index, window in enumerate(_windows(len(ids), batch_size)):
        for name in names[index % len(names):] + names[: index % len(names)]:
            answered = answers[name](pool, window, [ids[i] for i in window])
            latencies, total = results[name]
            results[name] = (latencies + answered, total + max(answered))
    return results


def _figures(prefix: str, latencies: list[float], rates: list[float]) -> dict:
    p50, p90 = percentiles([s * 1000 for s in latencies])
    return {f"{prefix}_ms_p50": p50, f"{prefix}_ms_p90": p90, f"{prefix}_rps": statistics.median(rates)}


def column(mode: str, kind: str) -> str:
    return f"{mode}_{kind.replace('-', '_')}"


def measure(host, base_model, pool: dict, serve: ServeConfig, seed: int, device, autocast,
            mixed_na: str | None = None) -> dict:
    """Every stream served every available mode and by the base alone (`base_model`: a copy from before adapters
    were attached), in `serve.repeats` interleaved rounds; n/a modes say why (`mixed_na`: the output check found
    mixed batches wrong or refused)."""
    metrics, servers = {}, {"base": BaseServer(base_model, device)}
    k = len(host.names)
    streams = {kind: stream(kind, serve.requests, k, serve.zipf_exponent, seed) for kind in serve.streams}
    with torch.inference_mode(), autocast():
        for mode in ("mixed", "single", "merged"):
            try:
                if mode == "mixed" and mixed_na:
                    raise NotAvailable(mixed_na)
                servers[mode] = Server(host, mode, device)
            except NotAvailable as reason:
                metrics[f"{mode}_na"] = str(reason)
                metrics.update({f"{column(mode, kind)}_{figure}": None for kind in streams
                                for figure in ("ms_p50", "ms_p90", "rps")})
        for server in servers.values():  # first windows allocate buffers: not timed
            warm = next(iter(streams.values()))[: serve.warmup * serve.batch_size]
            serve_stream(server.window, pool, warm, serve.batch_size)
            server.close()
        collected = {(mode, kind): ([], []) for mode in servers for kind in streams}
        # Modes that leave the base weights as they are take turns window by window; merged weights would change
        # what the others compute, so the merged mode serves its own pass (and unmerges after it).
        together = {mode: server.window for mode, server in servers.items() if mode != "merged"}
        for _ in range(serve.repeats):
            for kind, ids in streams.items():
                served = serve_side_by_side(together, pool, ids, serve.batch_size)
                if "merged" in servers:
                    served["merged"] = serve_stream(servers["merged"].window, pool, ids, serve.batch_size)
                    servers["merged"].close()
                for mode, (answered, seconds) in served.items():
                    collected[mode, kind][0].extend(answered)
                    collected[mode, kind][1].append(len(ids) / seconds)
    for (mode, kind), (latencies, rates) in collected.items():  # base too: it answered the same windows in turn
        metrics.update(_figures(column(mode, kind), latencies, rates))
    pooled = [collected["base", kind] for kind in streams]  # the base does the same work whatever the stream
    metrics.update(_figures("base", [s for latencies, _ in pooled for s in latencies], [r for _, rates in pooled
                                                                                       for r in rates]))
    return metrics


def check_outputs(host, pool: dict, batch_size: int, compute_dtype, autocast) -> dict:
    """Measured, not assumed: a mixed batch must give each row what its own adapter gives it alone, and switching
    adapters must change the outputs (else the K adapters, or the switch, are not what is being timed)."""
    names = host.names
    window = list(range(min(batch_size, len(next(iter(pool.values()))))))
    batch = rows(pool, window)
    ids = [position % len(names) for position in window]
    with torch.inference_mode(), autocast():
        alone = {}
        for name in names[: len(window)]:
            host.activate(name)
            alone[name] = host.forward(batch).logits.float()
        host.activate(names[0])
        allowed = tolerance(compute_dtype) * max(1.0, float(alone[names[0]].abs().max()))
        figures = {}
        if len(alone) > 1:
            difference = float((alone[names[0]] - alone[names[1]]).abs().max())
            figures.update(swap_output_diff=difference, swap_changes_output=difference > allowed)
        try:
            host.check_mixed()
            mixed = host.forward(batch, [names[i] for i in ids]).logits.float()
        except NotAvailable as reason:  # an error peft raises mid-forward is not caught: it leaves its hooks behind
            return {**figures, "mixed_na": str(reason)}
        expected = torch.stack([alone[names[i]][position] for position, i in enumerate(ids)])
        difference = float((mixed - expected).abs().max())
    figures.update(mixed_max_abs_diff=difference, mixed_ok=difference <= allowed)
    if difference > allowed:
        figures["mixed_na"] = f"rows did not get their own adapter's outputs (max difference {difference:.3g})"
    return figures
