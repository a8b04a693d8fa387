"""Inference throughput per architecture: ONNX Runtime against PyTorch eager, same input.

For every registered architecture (at the registry's default input shapes, or the shipped model's
shapes when ``models/zoo`` ships it) the same randomly initialised PyTorch module is

- run eagerly (``eval()``, ``torch.inference_mode()``), through the probability head the export
  adds, so both sides compute the same thing;
- exported with :func:`affectstream.models.export.export_onnx` and run by ONNX Runtime on the
  provider the service would choose (:func:`affectstream.models.runner.choose_providers`), with the
  service's session options (intra-op threads: ONNX Runtime's default; worker threads do not
  spin-wait);

on one identical float32 batch of 1 and of 32 windows. Weights do not change the cost of these
graphs, so random weights measure what the trained ones cost. For shipped models the shipped
``model.onnx`` is timed as well (``ort_shipped``), and its int8 variant where the folder has one
(``ort_shipped_int8``: what the service serves by default, ``inference_precision = int8``).

Each figure is the median of repeated runs after warm-up runs, over at least ``min_time_s`` and
``min_runs`` runs; throughput = batch size / median time.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["measure_all", "time_call"]


def time_call(fn: Callable[[], object], min_time_s: float, min_runs: int) -> dict[str, float]:
    """Median and p90 wall time of ``fn`` in ms after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times: list[float] = []
    t_end = time.perf_counter() + min_time_s
    while len(times) < min_runs or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1e3
    return {
        "ms_median": round(float(np.median(ms)), 4),
        "ms_p90": round(float(np.percentile(ms, 90)), 4),
        "runs": len(times),
    }


def _shipped_shapes(zoo: Path) -> dict[str, tuple[Path, dict[str, tuple[int, ...]]]]:
    """Architecture → (shipped model folder, per-sample input shapes) for the models in ``zoo``."""
    from affectstream.models.contract import load_contract

    out: dict[str, tuple[Path, dict[str, tuple[int, ...]]]] = {}
    for folder in sorted(p for p in zoo.iterdir() if (p / "model.json").is_file()):
        contract, _ = load_contract(folder)
        out[contract.architecture] = (folder, {i.name: tuple(i.shape) for i in contract.tensors})
    return out


def measure_all(
    zoo: Path,
    batches: tuple[int, ...] = (1, 32),
    min_time_s: float = 1.0,
    min_runs: int = 20,
    architectures: list[str] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """The ``inference_throughput`` section: per architecture, per batch size, ORT and torch."""
    import onnxruntime as ort
    import torch

    from affectstream.models import registry
    from affectstream.models.export import ProbabilityHead, export_onnx
    from affectstream.models.runner import QUANTIZED_ONNX, choose_providers, session_options

    shipped = _shipped_shapes(zoo)
    providers = choose_providers()
    rng = np.random.default_rng(0)
    per_model: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="affectstream-bench-") as tmp:
        for name in architectures or registry.names():
            folder, shapes = shipped.get(name, (None, registry.default_input_shapes(name)))
            torch.manual_seed(0)
            model = registry.build(name, shapes).eval()
            head = ProbabilityHead(model).eval()
            onnx_path = Path(tmp) / f"{name}.onnx"
            export_onnx(model, shapes, onnx_path)
            sess = ort.InferenceSession(str(onnx_path), session_options(), providers=providers)
            shipped_sess = int8_sess = None
            if folder is not None:
                shipped_sess = ort.InferenceSession(
                    str(folder / "model.onnx"), session_options(), providers=providers
                )
                if (folder / QUANTIZED_ONNX).is_file():  # what the service serves by default
                    int8_sess = ort.InferenceSession(
                        str(folder / QUANTIZED_ONNX), session_options(), providers=providers
                    )
            row: dict[str, Any] = {
                "input_shapes": {k: list(v) for k, v in shapes.items()},
                "shipped": folder is not None,
                "parameters": int(sum(p.numel() for p in model.parameters())),
            }
            for b in batches:
                feeds = {
                    k: rng.standard_normal((b, *v)).astype(np.float32) for k, v in shapes.items()
                }
                tensors = [torch.from_numpy(x) for x in feeds.values()]

                def run_torch(head: Any = head, tensors: list[torch.Tensor] = tensors) -> object:
                    with torch.inference_mode():
                        return head(*tensors)

                def run_ort(sess: Any = sess, feeds: dict[str, np.ndarray] = feeds) -> object:
                    return sess.run(None, feeds)

                with torch.inference_mode():
                    want = head(*tensors).numpy()
                got = np.asarray(sess.run(None, feeds)[0])
                entry: dict[str, Any] = {
                    "ort": time_call(run_ort, min_time_s, min_runs),
                    "torch": time_call(run_torch, min_time_s, min_runs),
                    "max_abs_diff": float(f"{np.abs(got - want).max():.2g}"),
                }
                for side, file_sess in (
                    ("ort_shipped", shipped_sess),
                    ("ort_shipped_int8", int8_sess),
                ):
                    if file_sess is None:
                        continue

                    def run_shipped(
                        s: Any = file_sess, feeds: dict[str, np.ndarray] = feeds
                    ) -> object:
                        return s.run(None, feeds)

                    entry[side] = time_call(run_shipped, min_time_s, min_runs)
                for side in ("ort", "torch", "ort_shipped", "ort_shipped_int8"):
                    if side in entry:
                        entry[side]["windows_per_s"] = round(b / entry[side]["ms_median"] * 1e3, 1)
                entry["ort_speedup"] = round(
                    entry["torch"]["ms_median"] / entry["ort"]["ms_median"], 2
                )
                row[f"batch_{b}"] = entry
                log(
                    f"inference {name} batch {b}: ORT {entry['ort']['ms_median']:.3f} ms, "
                    f"torch {entry['torch']['ms_median']:.3f} ms ({entry['ort_speedup']}x)"
                )
            per_model[name] = row
    return {
        "method": "median of repeated runs after 3 warm-up runs; same random input and weights "
        "on both sides; torch eager in eval + inference_mode; ORT on the service's provider",
        "provider": providers[0],
        "torch_threads": torch.get_num_threads(),
        "ort_threads": "onnxruntime default (one per physical core)",
        "models": per_model,
    }
