"""The face benchmark's result as Markdown: the reference table, the open set and the timings."""

from __future__ import annotations

from typing import Any

__all__ = ["markdown"]


def _six_row(name: str, row: dict[str, Any], times: bool) -> str:
    acc_r = row.get("accuracy_with_rejection")
    enr = f"{_pct(row['enrollment_rate'])} ({row['accepted']})" if acc_r is not None else "—"
    far = (f"{_pct(row['false_accept_rate'])} ({row['strangers_accepted']}/{row['strangers']})"
           if acc_r is not None else "—")
    cells = [name, _pct(row["accuracy_no_rejection"]), _pct(row.get("accuracy_with_rejection_probes_only")),
             _pct(acc_r), enr, far]
    if times:
        cells += [_ms(row.get("classification_ms_p50")), _ms(row.get("total_ms_p50"))]
    return "| " + " | ".join(cells) + " |"


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * v:.2f} %"


def _ms(v: Any) -> str:
    return "—" if v is None else f"{v:.1f} ms"


def markdown(r: dict[str, Any]) -> str:
    h = r["host"]
    far = r.get("far_target")
    far_txt = f"FAR {100 * far:g} %" if far is not None else "a FAR the bundle does not record"
    lines = [
        f"# Face recognition benchmark ({r['bundle_name']})",
        "",
        f"Host: {h['machine']} {h['cpu']} ({h['cores']} cores), threads {r['threads']}; "
        f"unknown threshold {r['unknown_threshold']:.4f} (from the bundle: calibrated on held-out training "
        f"identities for {far_txt}, never on ORL); test-time augmentation "
        f"{r.get('tta', 'none')}; detector {r['detector']}; the main embedding rows decide with the bundle's "
        f"score rule ({r.get('score_rule', 'cosine')}; the threshold above is the cosine rule's).",
        "",
        f"## Reference protocol on ORL: 6 people x 5 enrollment images, 5 probes each, 34 strangers "
        f"x 10 images; {r['protocol']['repeats']} random draws pooled",
        "",
        "| Method | Accuracy w/o rejection | Accuracy with rejection, enrolled probes only (reference "
        "definition) | Accuracy with rejection, strangers included | Enrollment rate | Stranger false-accept "
        "rate | Classification time | Total time per face |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in r["table"].items():
        lines.append(_six_row(name, row, times=True))
    ref = r["reference"]
    lines += [
        f"| *reference: CNN on a Pi, p0={ref['p0']}* | {_pct(ref['cnn_pi_without'])} | "
        f"{_pct(ref['cnn_pi_with_rejection'])} | — (no strangers) | {ref['enrollment_rate']} | — | "
        f"{ref['classification_ms']} ms | {ref['total_ms']} ms |",
        f"| *reference: Fisherfaces unaligned / aligned* | {_pct(ref['fisherfaces_unaligned'])} / "
        f"{_pct(ref['fisherfaces_aligned'])} | — | — | — | — | — | 1006 ms |",
        "",
        "Accuracy with rejection, enrolled probes only = correct / accepted probes of the enrolled people "
        "(the reference's reading: its test had no strangers). Strangers included = correct / all accepted "
        "faces, where an accepted stranger counts as an error. Enrollment rate = accepted probes / probes. "
        "Stranger false-accept rate = stranger images accepted as someone / stranger images. "
        "Classic rows have no rejection rule. Total time per face for classic rows = measured detect + "
        "align on the 640x480 frame + their prediction time.",
        "",
        "### Other stored thresholds (same draws; tta = mirror averaging: flip = enrollment and probe, "
        "enroll = enrollment only)",
        "",
        "| Method | Accuracy w/o rejection | Accuracy with rejection, enrolled probes only | Accuracy with "
        "rejection, strangers included | Enrollment rate | Stranger false-accept rate |",
        "|---|---|---|---|---|---|",
        *[_six_row(k, row, times=False) for k, row in r.get("threshold_options", {}).items()],
        "",
        "## Open set: all 40 ORL people (unseen in training), 5 enrolled, 5 probes each",
        "",
        "| Method | rank-1 (split 0) | TAR at FAR 1 % | at bundle threshold (TAR / FAR) "
        "| rank-1 mean [min, max] over splits | TAR at FAR 1 % mean |",
        "|---|---|---|---|---|---|",
    ]
    for v, o in r["open_set"].items():
        b = o.get("at_bundle_threshold", {})
        m = o.get("mean_over_splits", {})
        lines.append(f"| embedding {v} | {_pct(o['rank1'])} | {_pct(o['tar_at_far_0.01'])} | "
                     f"{_pct(b.get('tar'))} / {_pct(b.get('far'))} | {_pct(m.get('rank1'))} "
                     f"[{_pct(m.get('rank1_min'))}, {_pct(m.get('rank1_max'))}] ({m.get('splits')} splits) | "
                     f"{_pct(m.get('tar_at_far_0.01'))} |")
    for k, o in r["open_set_classic"].items():
        lines.append(f"| {k} | {_pct(o['rank1'])} | — | — | — | — |")
    lines += [
        "",
        f"## Total time per face ({r['frame']})",
        "",
        "| variant | threads | detect | align | embed | match | total p50 | face found |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in r["time_per_face"]:
        flip = " + flip" if t.get("flip") else ""
        lines.append(f"| {t['variant']}{flip} | {t['threads']} | {_ms(t['detect_ms_p50'])} | "
                     f"{_ms(t['align_ms_p50'])} | {_ms(t['embed_ms_p50'])} | {_ms(t['match_ms_p50'])} | "
                     f"{_ms(t['total_ms_p50'])} | {t['face_found']} |")
    if r["embed_ms_p50_interleaved"]:
        cost = "; ".join(f"{k} thread(s): " + ", ".join(f"{v} {ms:.2f} ms" for v, ms in e.items())
                         for k, e in r["embed_ms_p50_interleaved"].items())
        lines += ["", f"Embedding cost per face with and without mirror averaging (p50, interleaved): {cost}"]
    if r["int8_speedup_embed"]:
        lines += ["", "int8 vs float32 embedding (calls interleaved in one run, p50): " + "; ".join(
            f"{k} thread(s): float32 {e['tflite_float32']:.2f} ms, int8 {e['tflite_int8']:.2f} ms, "
            f"{r['int8_speedup_embed'][k]}x" for k, e in r["embed_ms_p50_interleaved"].items())]
    return "\n".join(lines) + "\n"
