"""The benchmark document: targets, the latency plot, and the README's benchmark block.

The README holds the latest full run between ``<!-- bench:begin -->`` and ``<!-- bench:end -->``;
``affectstream bench --update-readme README.md`` rewrites that block from the run's JSON.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = [
    "REQUIRED_KEYS",
    "SECTION_KEYS",
    "mark_synthetic_sessions",
    "markdown",
    "plot",
    "plot_soak",
    "soak_markdown",
    "targets",
    "update_readme",
]

SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "ingest": ("ingest",),
    "e2e": ("e2e_latency_ms", "capacity_sessions", "capacity", "stage_ms", "levels"),
    "profile": ("profile",),
    "inference": ("inference_throughput",),
    "cvxeda": ("cvxeda_speedup",),
    "resample": ("resample_cost",),
}
"""The document keys each section of ``affectstream bench`` writes."""
REQUIRED_KEYS = (*(k for keys in SECTION_KEYS.values() for k in keys), "machine")
"""The keys of a complete run's document."""
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

SINGLE_P99_MS = 50.0
SESSIONS_TARGET = 32
WEARABLE_SESSIONS_TARGET = 100
KIND_LABELS = {
    "lab": "full lab sessions (40 ch @ 128 Hz)",
    "wearable": "wearable sessions (EDA 4 Hz + BVP 64 Hz)",
}


def targets(doc: dict[str, Any]) -> dict[str, Any]:
    """The issue's three targets, each with the measured value, met or not, and the gap (only
    those whose section ran)."""
    out: dict[str, Any] = {}
    if "e2e_latency_ms" in doc:
        one = doc["e2e_latency_ms"].get("1", {})
        p99 = one.get("p99")
        cap = int(doc["capacity_sessions"])
        out["single_session_p99_le_50ms"] = {
            "measured_ms": p99,
            "met": p99 is not None and p99 <= SINGLE_P99_MS,
            "over_by_ms": None if p99 is None else round(max(0.0, p99 - SINGLE_P99_MS), 2),
        }
        out["sessions_within_250ms_p99_ge_32"] = {
            "measured": cap,
            "lower_bound": doc["capacity"]["is_lower_bound"],
            "met": cap >= SESSIONS_TARGET,
            "short_by": max(0, SESSIONS_TARGET - cap),
        }
    if "wearable" in doc:
        w = doc["wearable"]
        cap = int(w["capacity_sessions"])
        out["wearable_sessions_within_250ms_p99_ge_100"] = {
            "measured": cap,
            "lower_bound": w["capacity"]["is_lower_bound"],
            "met": cap >= WEARABLE_SESSIONS_TARGET,
            "short_by": max(0, WEARABLE_SESSIONS_TARGET - cap),
        }
    if "inference_throughput" in doc:
        shipped = {  # the shipped file itself against PyTorch eager, batch 1
            name: round(
                row["batch_1"]["torch"]["ms_median"] / row["batch_1"]["ort_shipped"]["ms_median"],
                2,
            )
            for name, row in doc["inference_throughput"]["models"].items()
            if row["shipped"]
        }
        slowest = min(shipped.values()) if shipped else None
        out["ort_faster_than_torch_batch1_every_shipped_model"] = {
            "speedup_by_model": shipped,
            "met": slowest is not None and slowest > 1.0,
        }
    return out


def mark_synthetic_sessions(fig: Any, doc: dict[str, Any]) -> None:
    """Say on the figure that its live sessions replayed synthetic data (the default when no
    ``--deap`` file is given): a performance figure, but one made from synthetic signals."""
    data = str(doc.get("live_sessions_data", ""))
    if "synthetic" in data:
        fig.text(
            0.5,
            0.005,
            f"sessions replay {data}: synthetic data, not DEAP",
            ha="center",
            va="bottom",
            fontsize=7,
            color="#b00020",
        )


def sweeps(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The e2e sweeps of ``doc`` by kind: the lab kind's keys are the document's own (as before
    there were kinds), the wearable kind's are under ``wearable``."""
    out = []
    if "e2e_latency_ms" in doc:
        out.append(("lab", doc))
    if "wearable" in doc:
        out.append(("wearable", doc["wearable"]))
    return out


def plot(doc: dict[str, Any], path: Path) -> None:
    """Latency percentiles against concurrent sessions, one panel per kind of session, with the
    budget and the 1-session target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sweeps(doc)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(6.4 * len(panels), 4.0), dpi=120, squeeze=False
    )
    for ax, (kind, sweep) in zip(axes[0], panels, strict=True):
        rows = sorted(
            ((int(k), v) for k, v in sweep["e2e_latency_ms"].items() if v["n"]),
            key=lambda r: r[0],
        )
        for q, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-"), ("max", "x:")):
            ax.plot([n for n, _ in rows], [v[q] for _, v in rows], style, label=q)
        budget = sweep["capacity"]["budget_p99_ms"]
        ax.axhline(budget, color="crimson", lw=1, ls="--", label=f"p99 budget {budget:g} ms")
        ax.axhline(SINGLE_P99_MS, color="grey", lw=1, ls=":", label="1-session p99 target 50 ms")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        tried = sorted(int(k) for k in sweep["levels"])
        ax.set_xticks(tried, [str(n) for n in tried])
        n_models = len(sweep.get("models", []))
        ax.set_xlabel(
            f"concurrent {KIND_LABELS.get(kind, kind)}, {n_models} models × 4 windows/s",
            fontsize=8,
        )
        ax.set_ylabel("LSL push → WebSocket receive (ms)")
        ax.set_title(f"{kind}: capacity {sweep['capacity_sessions']} sessions", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    m = doc["machine"]
    fig.suptitle(
        f"affectstream end-to-end latency — {m.get('cores')} cores, {m.get('cpu')}", fontsize=8
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    mark_synthetic_sessions(fig, doc)
    fig.savefig(path)
    plt.close(fig)


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _ratio(v: Any) -> str:
    return "–" if v is None else f"{float(v):.3f}"


def _workers_lines(w: dict[str, Any]) -> list[str]:
    """The capacity per worker count (``affectstream bench --workers``)."""
    kind = w.get("kind", "lab")
    lines = [
        "",
        f"Capacity by worker processes, {KIND_LABELS.get(kind, kind)} ({w['topology']}; same "
        "rule as above):",
        "",
        "| workers | capacity (sessions) | first failing level | p99 at the smallest level | "
        "CPU cores at capacity (gateway + workers) |",
        "|---|---|---|---|---|",
    ]
    for n, row in sorted(w["by_workers"].items(), key=lambda kv: int(kv[0])):
        cap = row["capacity"]
        smallest = min(row["e2e_latency_ms"], key=int) if row["e2e_latency_ms"] else None
        p99 = row["e2e_latency_ms"][smallest]["p99"] if smallest is not None else None
        cores = (cap.get("cpu_cores_at_capacity") or {}).get("service")
        lines.append(
            f"| {n} | {row['capacity_sessions']}{'+' if cap['is_lower_bound'] else ''} | "
            f"{cap['first_failing_level']} | {p99} ms | {cores} |"
        )
    if w["capacity_ratio"] is not None:
        a, b = w["ratio_of"]
        lines += ["", f"Capacity with {b} workers / with {a}: **{w['capacity_ratio']}×**."]
    return lines


def markdown(doc: dict[str, Any], json_rel: str, png_rel: str | None) -> str:
    """The README block for ``doc`` (the sections it has; ``png_rel`` None when it has no plot)."""
    m = doc["machine"]
    versions = f"Python {m['python']}"
    if "inference_throughput" in doc:
        versions += (
            f", onnxruntime {m.get('onnxruntime')}, torch {m.get('torch')}; "
            f"provider {doc['inference_throughput']['provider']}"
        )
    command = "affectstream bench" + (" --quick" if doc["quick"] else "")
    sections = doc.get("sections")
    if sections and len(sections) < len(SECTION_KEYS):
        command += f" --only {','.join(sections)}"
    kinds = doc.get("kinds")
    if kinds and kinds != list(KIND_LABELS) and {"e2e", "profile"} & set(sections or ()):
        command += f" --kind {','.join(kinds)}"
    lines = [
        f"Latest run: `{json_rel}` ({doc['date']}, `{command}`) on **{m['cpu']}, {m['cores']} "
        f"cores, {m['memory_mib']} MiB**, {versions}."
        + (" Service, pushers and WebSocket clients share the machine." if sweeps(doc) else "")
        + _load_note(doc),
    ]
    if png_rel is not None and sweeps(doc):
        lines += ["", f"![end-to-end latency vs sessions]({png_rel})"]
    for kind, sweep in sweeps(doc):
        lines += _e2e_lines(kind, sweep)
    for key in sorted(k for k in doc if k.startswith("e2e_workers")):
        lines += _workers_lines(doc[key])
    if "profile" in doc:
        lines += _profile_lines(doc["profile"])
    if "ingest" in doc:
        lines += _ingest_lines(doc["ingest"])
    if "inference_throughput" in doc:
        lines += _inference_lines(doc["inference_throughput"])
    if "cvxeda_speedup" in doc:
        lines += _cvxeda_lines(doc["cvxeda_speedup"])
    if "resample_cost" in doc:
        lines += _resample_lines(doc["resample_cost"])
    if doc.get("targets"):
        lines += ["", "Targets:", "", *_target_lines(doc["targets"])]
    return "\n".join(lines)


def _load_note(doc: dict[str, Any]) -> str:
    """A sentence on the machine's load when it was not idle (load average ≥ 0.5 per core)."""
    m = doc["machine"]
    cores = float(m.get("cores") or 1)
    loads = [
        float(v)
        for k, v in m.items()
        if k.startswith("load_average_1min") and isinstance(v, int | float)
    ]
    if not loads or max(loads) < 0.5 * cores:
        return ""
    return (
        f" **Measured on a loaded machine**: 1-min load average {min(loads):g}–{max(loads):g} on "
        f"{cores:g} cores (other work was running)."
    )


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _with_precision(doc: dict[str, Any]) -> str:
    """The models of a sweep, each with the precision the service served it at (when known)."""
    precision = doc.get("model_precision") or {}
    return ", ".join(
        f"{m} ({precision[m]})" if precision.get(m) else m for m in doc.get("models", [])
    )


def _e2e_lines(kind: str, doc: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"{_first_upper(KIND_LABELS.get(kind, kind))}, models {_with_precision(doc)}:",
        "",
    ]
    lines += [
        "| sessions | p50 ms | p95 ms | p99 ms | max ms | coalesced | received/expected "
        "| service CPU (cores) | pushers CPU | service RSS MiB | holds |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, lv in doc["levels"].items():
        e = doc["e2e_latency_ms"][key]
        lines.append(
            f"| {key} | {_fmt(e['p50'])} | {_fmt(e['p95'])} | {_fmt(e['p99'])} | {_fmt(e['max'])} "
            f"| {_fmt(lv['coalesced'])} "
            f"| {lv['received_predictions']}/{lv['expected_predictions']} "
            f"| {lv['cpu_cores']['service']} | {lv['cpu_cores']['pushers']} "
            f"| {lv['memory'].get('rss_mib')} | {'yes' if lv['holds'] else 'no'} |"
        )
    st = doc["stage_ms"]

    def q(stage: str, key: str) -> str:
        return _fmt((st.get(stage) or {}).get(key))

    lines += [
        "",
        f"Stages at {st['sessions']} session{'s' if st['sessions'] != 1 else ''} (the service's "
        f"own `latency_ms`, p50 / p95 ms): ingest {q('ingest', 'p50')} / {q('ingest', 'p95')} "
        "(last sample's timestamp → found due: the producer's push, the acquisition poll and "
        "the scheduler's wake or tick), preprocess "
        f"{q('preprocess', 'p50')} / {q('preprocess', 'p95')}, inference "
        f"{q('inference', 'p50')} / {q('inference', 'p95')}.",
    ]
    return lines


def _profile_lines(prof: dict[str, Any]) -> list[str]:
    """The stage budget table and, per kind, the machine's load and the top frames."""
    from affectstream.bench.profile import stage_table

    rows = prof["by_kind"]
    lines = [
        "",
        f"Service CPU by stage, **ms of CPU per session-second** ({prof['profiler']}; each "
        "sample put in one stage by the frames it holds, `bench/profile.py` `classify`):",
        "",
        *stage_table(prof),
        "",
    ]
    for kind, r in rows.items():
        load = r["machine_load"]
        top = "; ".join(
            f"`{f['frame']}` {100 * f['share']:.0f} %" for f in r["top_leaf_frames"][:3]
        )
        lines.append(
            f"- {kind}: {r['seconds']:g} s at {r['rate_hz']} Hz, {r['active_samples']} active "
            f"samples, load average {load['load_average_1min_start']:g}–"
            f"{load['load_average_1min_end']:g}, other processes "
            f"{load['other_processes_cores']:g} cores; top frames (self): {top}."
        )
    return lines


def _ingest_lines(ing: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "Ingest alone (one process holding `IngestSession`s of full sessions, pushers in other "
        "processes; CPU as a fraction of one core):",
        "",
        "| sessions | ingest CPU (cores) | per session | CPU ms per session-second "
        "| samples received/expected | pushers CPU |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for key, r in ing["by_sessions"].items():
        lines.append(
            f"| {key} | {_fmt(r['cpu_core_fraction'])} "
            f"| {_fmt(r['cpu_core_fraction_per_session'])} "
            f"| {_fmt(r['cpu_ms_per_session_second'])} "
            f"| {r['samples_received']}/{r['samples_expected']} ({_ratio(r['received_ratio'])}) "
            f"| {_fmt(r['pushers_cpu_core_fraction'])} |"
        )
    lines += [
        "",
        f"Sessions within half a core: {ing['sessions_at_50pct_core_measured']} measured, "
        f"{_fmt(ing['sessions_at_50pct_core_extrapolated'])} extrapolated from the per-session "
        "cost at the largest count.",
    ]
    return lines


def _inference_lines(inf: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "| model | ORT b1 ms | torch b1 ms | ORT/torch b1 | ORT b32 windows/s "
        "| torch b32 windows/s | shipped ONNX b1 ms | shipped int8 b1 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in inf["models"].items():
        b1, b32 = row["batch_1"], row["batch_32"]
        shipped = b1.get("ort_shipped", {}).get("ms_median")
        int8 = b1.get("ort_shipped_int8", {}).get("ms_median")
        lines.append(
            f"| {name}{' (shipped)' if row['shipped'] else ''} | {b1['ort']['ms_median']} "
            f"| {b1['torch']['ms_median']} | {b1['ort_speedup']}× "
            f"| {b32['ort']['windows_per_s']} | {b32['torch']['windows_per_s']} | {_fmt(shipped)} "
            f"| {_fmt(int8)} |"
        )
    return lines


def _cvxeda_lines(cvx: dict[str, Any]) -> list[str]:
    return [
        "",
        "Online cvxEDA vs a from-scratch cvxopt solve (16 Hz, 0.25 s hops, median per hop): "
        + ", ".join(
            f"{k} s: {v['speedup_median']}×"
            + (
                f" (compiled {v['compiled_speedup_median']}×)"
                if "compiled_speedup_median" in v
                else ""
            )
            + (
                f", compiled vs PyPI cvxeda 1.1.0 {v['compiled_pypi_speedup_median']}×"
                if "compiled_pypi_speedup_median" in v
                else ""
            )
            for k, v in cvx["by_segment_s"].items()
        )
        + ".",
    ]


def _resample_lines(cost: dict[str, Any]) -> list[str]:
    rows = [
        f"| {label} | {r['converter']} | {r['cpu_ms_per_stream_s']:.3f} ms |"
        for label, r in cost["by_case"].items()
    ]
    return [
        "",
        f"Rate conversion, CPU per stream-second ({cost['method']}, {cost['hop_s']:g} s hops):",
        "",
        "| stream | converter | CPU per stream-second |",
        "|---|---|---|",
        *rows,
    ]


def _target_lines(t: dict[str, Any]) -> list[str]:
    lines = []
    if "single_session_p99_le_50ms" in t:
        a = t["single_session_p99_le_50ms"]
        lines.append(
            f"- single-session p99 ≤ 50 ms: {_fmt(a['measured_ms'])} ms — "
            + ("**met**" if a["met"] else f"**missed** by {a['over_by_ms']} ms")
        )
    if "sessions_within_250ms_p99_ge_32" in t:
        b = t["sessions_within_250ms_p99_ge_32"]
        cap = f"{'≥ ' if b['lower_bound'] else ''}{b['measured']}"
        lines.append(
            f"- ≥ 32 concurrent full sessions within the 250 ms p99 budget: {cap} — "
            + ("**met**" if b["met"] else f"**missed** by {b['short_by']} sessions")
        )
    if "wearable_sessions_within_250ms_p99_ge_100" in t:
        b = t["wearable_sessions_within_250ms_p99_ge_100"]
        cap = f"{'≥ ' if b['lower_bound'] else ''}{b['measured']}"
        lines.append(
            f"- ≥ 100 concurrent wearable sessions within the 250 ms p99 budget: {cap} — "
            + ("**met**" if b["met"] else f"**missed** by {b['short_by']} sessions")
        )
    if "ort_faster_than_torch_batch1_every_shipped_model" in t:
        c = t["ort_faster_than_torch_batch1_every_shipped_model"]
        speeds = ", ".join(f"{k} {v}×" for k, v in c["speedup_by_model"].items())
        lines.append(
            "- ONNX Runtime faster than PyTorch eager at batch 1 for every shipped model: "
            f"{speeds} — " + ("**met**" if c["met"] else "**missed**")
        )
    return lines


def update_readme(readme: Path, block: str) -> None:
    """Replace the text between the benchmark markers of ``readme`` with ``block``."""
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme}: no {BEGIN} … {END} block to update")
    readme.write_text(pattern.sub(lambda _: f"{BEGIN}\n{block}\n{END}", text))


def plot_soak(doc: dict[str, Any], path: Path) -> None:
    """The soak over time: the service's RSS, threads and open files, and prediction latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    soak = doc["soak"]
    rows = soak["samples"]
    t = [r["t_s"] / 60 for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(8.0, 5.6), dpi=120, sharex=True)
    panels = (
        (axes[0][0], "rss_mib", "service RSS (MiB)"),
        (axes[0][1], "threads", "service threads"),
        (axes[1][0], "fds", "service open file descriptors"),
    )
    for ax, key, label in panels:
        ax.plot(t, [r.get(key) for r in rows], ".-")
        ax.set_ylabel(label, fontsize=8)
        ax.grid(True, alpha=0.3)
    ax = axes[1][1]
    for src, q, style in (
        ("latency_ms", "p50", "o-"),
        ("latency_ms", "p99", "^-"),
        ("e2e_ms", "p50", "o:"),
        ("e2e_ms", "p99", "^:"),
    ):
        label = f"{'service' if src == 'latency_ms' else 'end-to-end'} {q}"
        ax.plot(t, [r[src][q] for r in rows], style, ms=3, label=label)
    ax.set_ylabel("prediction latency (ms)", fontsize=8)
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6)
    for ax in axes[1]:
        ax.set_xlabel("minutes after warm-up", fontsize=8)
    m = doc["machine"]
    fig.suptitle(
        f"affectstream soak: {soak['sessions']} faulty sessions + WebSocket churn, "
        f"{m.get('cores')} cores — faults {soak['faults']}",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    mark_synthetic_sessions(fig, doc)
    fig.savefig(path)
    plt.close(fig)


def soak_markdown(doc: dict[str, Any], json_rel: str, png_rel: str) -> str:
    """A short Markdown summary of a soak document."""
    s = doc["soak"]
    m = doc["machine"]
    lat, e2e = s["latency_ms"], s["e2e_ms"]
    lines = [
        f"Soak `{json_rel}` ({doc['date']}) on **{m.get('cpu')}, {m.get('cores')} cores**: "
        f"{s['minutes']} min after warm-up, {s['sessions']} full sessions with faults "
        f"`{s['faults']}`, {s['churn_connects']} churned WebSocket connections.",
        "",
        f"![soak]({png_rel})",
        "",
        "| | start | end | growth |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (("rss_mib", "service RSS MiB"), ("threads", "threads"), ("fds", "open fds")):
        lines.append(
            f"| {label} | {_fmt(s['start'][key])} | {_fmt(s['end'][key])} | "
            f"{_fmt(s['growth'][key])} |"
        )
    lines += [
        "",
        f"Service alive throughout: **{'yes' if s['service_alive'] else 'no'}**"
        + ("" if s["service_alive"] else f" ({s['service_death']})")
        + f"; {s['predictions']} predictions; service latency p50/p99/max "
        f"{_fmt(lat['p50'])}/{_fmt(lat['p99'])}/{_fmt(lat['max'])} ms; end-to-end p50/p99/max "
        f"{_fmt(e2e['p50'])}/{_fmt(e2e['p99'])}/{_fmt(e2e['max'])} ms; status messages "
        f"{s['status_messages']}.",
    ]
    return "\n".join(lines)
