"""bench/RESULTS-soak.md from a soak result (bench/soak.py --write-md)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

MACHINE = ("2-core AMD EPYC KVM virtual machine (24 GB RAM), shared at the time with other people's work "
           "(tests and builds of up to six other sessions): every timing below includes that contention")


def _ms(v):
    return "-" if v is None else f"{v:.0f}"


def write_markdown(result: dict, path: Path, notes: str = "") -> None:
    a = result["args"]
    inv = result["invariants"]
    lines = [
        "# Soak with injected faults (issue 19 items 1-3)",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on a {MACHINE}; "
        f"source: {result.get('source')}; `python bench/soak.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in a.items()
                   if k in ("duration", "viewers", "annotators", "pathologists", "jobs", "max_jobs", "training_steps",
                            "batch_deadline", "seed", "source"))
        + " --write-md`.",
        "",
        f"Private PostgreSQL and Redis on loopback, MEDIA_ROOT on its own {result.get('media_fs')} "
        f"({a['media_mb']} MB), two daphne processes, two analysis `qcluster` and one training `qcluster` "
        f"(training queue: {result.get('training_queue')}), each with one worker process. Load: "
        f"{a['viewers']} viewers panning DeepZoom tiles with an overlay query per view, {a['annotators']} annotators "
        f"autosaving every ~2 s, {a['pathologists']} pathologists correcting and drawing regions on one job, "
        f"SYNTHETIC slide uploads, report drafts, sign-offs, amendments and downloads, {a['jobs']} analysis job streams "
        f"on the real PD-L1 demo slide and one training run ({a['training_steps']} steps). "
        f"Setup (initdb, migrate, seed with the fault-free reference analysis) took {result['setup_s']} s; the load ran "
        f"{result['load_s']} s ({a['duration']:.0f} s asked, then until the last fault had recovered); "
        f"{result['requests']} requests.",
        "",
        f"**Verdict: {'every invariant held' if result['ok'] else 'NOT every invariant held'}.**",
        "",
        "## What must hold",
        "",
        "| invariant | held | measured |",
        "|---|---|---|",
    ]
    describe = {
        "annotation_saves": lambda v: f"{v['acknowledged']} acknowledged autosaves, each found as its revision "
                                      f"with the same points; sessions behind their last ack: {len(v['sessions_behind_last_ack'])}",
        "corrections": lambda v: f"{v['acknowledged']} acknowledged corrections present, missing: {len(v['missing'])}",
        "regions": lambda v: f"{v['acknowledged']} acknowledged regions present, missing: {len(v['missing'])}",
        "uploads": lambda v: f"{v['acknowledged']} stored uploads intact (sha256), {v['refused']} refused with nothing "
                             f"stored; orphan slide folders {len(v['orphan_slide_files'])}; upload temp files left "
                             f"{len(v['leftover_upload_temp_files'])}",
        "signed_reports": lambda v: f"{v['signed']} versions signed; {v['downloads']} downloads, each byte-identical "
                                    f"to the sha256 stored at signing; differing: {len(v['downloads_differing'])}",
        "jobs": lambda v: f"{len(v['jobs'])} jobs: " + ", ".join(
            f"#{j['job']} {j['status']}{' identical' if j.get('identical') else ' DIFFERENT' if j['status'] == 'done' else ''}"
            f"{' after ' + str(len(j['retries'])) + ' retry' if j['retries'] else ''}" for j in v["jobs"])
            + f" (reference counts {v['reference']['counts']})",
        "training": lambda v: "; ".join(f"{r['name']}: {'registered' if r['registered'] else 'NOT registered'}"
                                        for r in v["runs"]) or "no run queued",
        "no_5xx_outside_fault_windows": lambda v: f"{v['count']} answers 5xx or unanswered outside the fault windows",
        "every_fault_injected_and_recovered": lambda v: f"{v['faults']} faults",
    }
    for name, v in inv.items():
        try:
            text = describe[name](v)
        except (KeyError, TypeError):
            text = json.dumps(v)[:300]
        lines.append(f"| {name.replace('_', ' ')} | {'yes' if v.get('ok') else '**no**'} | {text} |")
    lines += ["", "## Faults and recovery", "",
              "Times in seconds from the start of the load. *Back*: the component answers again (restarted by the "
              "harness as a supervisor would, or the disk freed). *Recovered*: the work the fault hit is done or "
              "flowing (qcluster: every batch it held is done, after the deadline requeue; daphne: its port answers "
              "an authenticated API read; Redis: every active job has progressed; PostgreSQL: both ports answer and "
              "every active job has progressed; disk: an upload is stored again).", "",
              "| fault | injected at | back after | recovered after | details |", "|---|---|---|---|---|"]
    for f in result["faults"]:
        back = f"{f['t_back_s'] - f['t_inject_s']:.1f}" if f["t_back_s"] is not None and f["t_inject_s"] is not None else "-"
        details = json.dumps(f["details"])[:350].replace("|", "/")
        if f["error"]:
            details += f" ERROR: {f['error'][-200:]}"
        lines.append(f"| {f['kind']} | {f['t_inject_s']} | {back} | {f['recovery_s']} | {details} |")
    lines += ["", "## Answers inside the fault windows", "",
              "| answer | count | examples |", "|---|---|---|"]
    for key, n in sorted(result["http"]["inside_windows"].items(), key=lambda kv: -kv[1]):
        ex = "; ".join(result["http"].get("inside_samples", {}).get(key, []))[:400].replace("|", "/").replace("\n", " ")
        lines.append(f"| {key} | {n} | {ex} |")
    lines += ["", "## Latency under load (outside fault windows)", "",
              "| request | n | p50 ms | p95 ms | max ms |", "|---|---|---|---|---|"]
    for op, v in result["latency"].items():
        lines.append(f"| {op} | {v['n']} | {_ms(v['p50_ms'])} | {_ms(v['p95_ms'])} | {_ms(v['max_ms'])} |")
    lines += ["", "## Resident memory (process tree totals)", "",
              "| process | start MB | end MB | processes at end | restarts |", "|---|---|---|---|---|"]
    mem = result["memory"]
    for name in sorted(set(mem["start"]) | set(mem["end"])):
        s, e = mem["start"].get(name, {}), mem["end"].get(name, {})
        lines.append(f"| {name} | {s.get('total_mb', '-')} | {e.get('total_mb', '-')} | {e.get('processes', '-')} | "
                     f"{result['restarts'].get(name, '-')} |")
    if notes:
        lines += ["", notes.strip()]
    lines += ["", "Raw numbers: `bench/RESULTS-soak.json`.", ""]
    path.write_text("\n".join(lines))
    path.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str))
