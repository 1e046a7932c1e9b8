"""report.md: the fit in words a reader can act on — recommendation first, then the evidence."""

from __future__ import annotations

from pathlib import Path

from data_pipelines.atomic import atomic_write_text
from scaling.fit.basics import format_interval as _ci
from scaling.fit.data import metric_label
from scaling.fit.recommend import train_command

SIGN_CONVENTION = "Differences are other level minus best level: positive = worse (higher loss)."
# the recommendation's key holding the value the large run takes for each hyperparameter
_REC_KEYS = {"lr": "lr", "batch_size": "batch_tokens"}


def _g(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def _recommendation(r: dict, level: str) -> list[str]:
    lines = [
        "## Recommendation",
        "",
        "| | value | " + level + " interval |",
        "|---|---|---|",
        f"| model ({r['params_kind']} params) | {_g(r['params'])} "
        f"(n_layer={r['n_layer']}, d_model={r['d_model']}, "
        f"n_head={r['n_head']}) | N_opt {_ci(r.get('n_opt_ci'))} |",
        f"| tokens | {_g(r['tokens'])} ({_g(r['tokens_per_param'])} per parameter) | "
        f"D_opt {_ci(r.get('d_opt_ci'))} |",
        f"| training FLOPs | {_g(r['flops'])} ({_g(r['extrapolation_factor'])}x the largest fitted run) | |",
        f"| predicted final loss | {_g(r['loss'], 4)} | {_ci([r['lo'], r['hi']], 4)} (prediction interval) |",
        f"| learning rate | {_g(r['lr'])} ({r['lr_source']}) | {_ci(r.get('lr_ci'))} |",
        f"| batch (tokens) | {_g(r['batch_tokens'])} ({r['batch_source']}) | {_ci(r.get('batch_ci'))} |",
    ]
    if r.get("acc_metric"):
        lines.append(f"| predicted {r['acc_metric']} (two steps, below) | {_g(r['acc'])} | "
                     f"{_ci([r['acc_lo'], r['acc_hi']]) if r['acc_lo'] is not None else 'n/a'} |")
    if r.get("gpu_hours") is not None:
        lines.append(
            f"| cost | {_g(r['gpu_hours'])} GPU-hours at {_g(r['gpu_throughput'])} FLOP/s per GPU | |"
        )
    lines += _fixed_run(r)
    if r.get("allocation"):
        lines += ["", f"Size set by {r['allocation']['approach']}: {r['allocation']['why']}; the predicted "
                      "loss is approach 3's."]
    if r.get("batch_rounding"):
        lines += ["", f"Batch in the config: {r['batch_rounding']['note']}."]
    lines += ["", f"Config: `{r['config']}` (train it: `{train_command(r['config'])}`).", ""]
    return lines


def _parametric(p: dict, level: str) -> list[str]:
    ci = p.get("ci", {})
    return [
        "## Approach 3: L(N, D) = E + A/N^α + B/D^β",
        "",
        "| constant | estimate | " + level + " bootstrap interval |",
        "|---|---|---|",
        *[
            f"| {name} | {_g(p[name], 4)} | {_ci(ci.get(name), 4)} |"
            for name in ("E", "alpha", "beta", "a", "b")
        ],
        f"| A | {_g(p['A'])} | {_ci(ci.get('A'))} (poorly determined: read with its interval) |",
        f"| B | {_g(p['B'])} | {_ci(ci.get('B'))} (poorly determined: read with its interval) |",
        "",
        f"Huber δ {_g(p.get('huber_delta'))} on log loss (1.345× the relative seed noise where repeated "
        "seeds measure it, else Hoffmann et al.'s 1e-3); "
        f"Huber objective {_g(p['objective'])}, final gradient norm {_g(p['grad_norm'])}, "
        f"residual std of log loss {_g(p['residual_std'])}, {p['n_points']} points; bootstrap: "
        f"{p['bootstrap'].get('n_ok', 0)}/{p['bootstrap'].get('n_boot', 0)} refits over "
        f"{p['bootstrap'].get('unit', 'runs')}. Closed form at the target (C = 6ND): "
        f"N_opt={_g(p['n_opt_closed_form'])}, D_opt={_g(p['d_opt_closed_form'])}.",
        "",
    ]


def _approaches(result: dict) -> list[str]:
    iso, env = result["isoflop"], result["envelope"]
    lines = [
        "## The three approaches: N_opt ∝ C^a",
        "",
        "| approach | a | notes |",
        "|---|---|---|",
        f"| 3 parametric | {_g(result['parametric']['a'])} | "
        f"interval {_ci(result['parametric']['ci'].get('a'))} |",
        *_isoflop_rows(iso),
        _envelope_row(env),
        "",
    ]
    lines += _isoflop_notes(iso)
    if env["points"]:
        lines.append("- Approach 1 uses mid-training points of runs whose LR had not decayed there; "
                     "it leans toward larger models.")
    return lines + [""]


def _envelope_row(env: dict) -> str:
    """Approach 1's row: a, the envelope's points, and what its interval's copies were shifted by."""
    source = env["note"] or "from the val curves of the tuned runs (a setting's seeds averaged)"
    notes = f"{len(env['points'])} envelope point(s); {source}"
    if env.get("a_ci"):
        shifted = "the run-to-run noise"
        if env.get("excess_scatter"):
            shifted += f" and the profiles' quirks (σ {_g(env['excess_scatter'])})"
        notes += f"; interval {_ci(env['a_ci'])} from {env['n_draws']} copies shifted by {shifted}"
    return f"| 1 envelope | {_g(env['a'])} | {notes} |"


def _isoflop_rows(iso: dict) -> list[str]:
    """Approach 2's rows: the method reported first, then the others for comparison."""
    order = [iso["method"]] + [m for m in iso["methods"] if m != iso["method"]]
    return [f"| 2 IsoFLOP ({name}) | {_g(m['a'])} | "
            f"{'reported' if name == iso['method'] else 'for comparison'}; interval {_ci(m['a_ci'])}; "
            f"{m['n_budgets']} budget(s) used, {m['n_skipped']} skipped |"
            for name, m in ((name, iso["methods"][name]) for name in order)]


def _isoflop_notes(iso: dict) -> list[str]:
    lines = []
    if iso["budgets"]:
        how = {"polynomial": "a polynomial in log N through the sizes near the best one, weighted by their "
                             "noise (a parabola, or a cubic where the profile's asymmetry shows beyond the "
                             "noise)",
               "interpolate": "an Akima interpolant of log loss in log N",
               "parabola": "an unweighted parabola near the best size"}[iso["method"]]
        excess = iso.get("excess_scatter")
        quirks = ""
        if excess and excess["tau"] > 0:
            quirks = (f" and by the profiles' scatter beyond it about smooth curves (σ {_g(excess['tau'])} "
                      f"added to each run's: √χ² {excess['ratio']:.2f} on {excess['dof']} degrees of "
                      f"freedom)")
        elif excess:
            quirks = (f"; the profiles scatter about smooth curves within that noise (√χ² "
                      f"{excess['ratio']:.2f} on {excess['dof']} degrees of freedom)")
        widened = (f", widened ×{iso['scatter_ratio']:.2f} because the optima scatter more than that noise "
                   f"explains" if (iso["scatter_ratio"] or 0) > 1 else "")
        lines.append(f"- Approach 2 ({iso['method']}): per budget the best run per size; N* from {how}; a "
                     f"from a regression of log N* on log C weighted by each budget's uncertainty; the "
                     f"interval from {iso['n_draws']} copies of the runs perturbed by run-to-run noise "
                     f"(σ {_g(iso['noise'])}: {iso['noise_source']}){quirks}{widened}.")
    law = iso["loss_law"]
    if law:
        lines.append(f"- Loss at the optimum: L*(C) = {_g(law['E'], 4)} + {_g(law['A'])}·C^-"
                     f"{_g(law['alpha'])} (E {_ci(law['ci'].get('E'), 4)}, α {_ci(law['ci'].get('alpha'))}; "
                     f"{law['n_points']} budgets).")
    if iso["method_note"]:
        lines.append(f"- The IsoFLOP methods differ: {iso['method_note']}")
    lines += [f"- IsoFLOP budget C={_g(s['flops'])} skipped: {s['reason']}" for s in iso["skipped"]]
    return lines


def _hparam_cell(p: dict, key: str, ci_key: str) -> str:
    if p.get(key) is None:
        return f"n/a ({p.get(key + '_note', 'not swept')})"
    return f"{_g(p[key])} {_ci(p.get(ci_key)) if p.get(ci_key) else ''}".strip()


def _fixed_run(r: dict) -> list[str]:
    """How far a fixed (N, D) target is from the compute-optimal run of the same compute."""
    opt = r.get("compute_optimal")
    if not opt:
        return []
    return ["", f"Compute-optimal with the same compute: {_g(opt['params'])} params "
                f"(n_layer={opt['n_layer']}) "
                f"on {_g(opt['tokens'])} tokens ({_g(opt['tokens_per_param'])} per parameter), loss "
                f"{_g(opt['loss'], 4)} {_ci(opt.get('loss_ci'), 4)}: the chosen run costs "
                f"{opt['loss_gap']:+.4f} ({100 * opt['loss_gap_rel']:+.2f}%) for its shape."]


_FORMS = {"N,D": "c·N^a·D^b", "N": "c·N^a", "C": "c·C^g (C = 6ND)"}


def _law_text(name: str, h: dict, rec: dict) -> str:
    """The law as a formula with its exponents' intervals, or in words why there is none and what the
    large run takes instead."""
    law, prediction = h.get("law"), h.get("prediction")
    if not law:
        note = (h.get("note") or "").strip().rstrip(".")
        if prediction is not None:
            return f"{note or 'measured at one size only, no size law'}; the large run takes {_g(prediction)}"
        return (f"{note or 'no optimum found'}; no law, the large run keeps the base config's {name} "
                f"({_g(rec.get(_REC_KEYS.get(name, name)))})")
    ci = law.get("exponent_ci", {})
    exps = ", ".join(f"{k} exponent {_g(v)} {_ci(ci.get(k))}" for k, v in law["exponents"].items())
    return f"{name}_opt = {_FORMS[law['form']]} with c = {_g(law['coef'])}, {exps}"


def _hparams(hp: dict, rec: dict) -> list[str]:
    swept = {k: v for k, v in hp.items() if k != "backtest"}
    if not swept:
        return ["## Hyperparameters", "", "No learning-rate or batch-size sweep in the inputs.", ""]
    lines = ["## Hyperparameter laws", ""]
    for name, h in swept.items():
        noise = (f" Interval from run-to-run noise σ={_g(h['noise'])} ({h['noise_source']})."
                 if "lo" in h and h.get("noise") is not None else "")
        errors = ", ".join(f"{f}: {_g(e)}" for f, e in h.get("form_errors", {}).items() if e is not None)
        form = (f" Form {h['form']} ({h['form_reason']}; leave-one-size-out error of ln opt: {errors})."
                if h.get("form") else "")
        if not h.get("law"):
            lines.append(f"- **{name}**: {_law_text(name, h, rec)}.{noise}")
            continue
        lines.append(f"- **{name}**: {_law_text(name, h, rec)}; at N={_g(h.get('target_params'))}, "
                     f"D={_g(h.get('target_tokens'))}: {_g(h.get('prediction'))} "
                     f"{_ci([h['lo'], h['hi']]) if 'lo' in h else ''}.{form}{noise} {h.get('note', '')}")
        for c in h.get("cells", []):
            edge = {"above": " (a lower bound: above the largest value tried)",
                    "below": " (an upper bound: below the smallest value tried)",
                    }.get(c.get("bound") or "", "")
            if c["at_edge"] and not edge:
                edge = " (edge of the range: a bound only)"
            how = " jointly with the other hyperparameter" if c.get("joint") else ""
            if c.get("window") and c["window"] != "all plausible settings":
                how += f", fitted {c['window']} (lopsided: one quadratic does not fit all settings)"
            if c.get("method", "").startswith("best setting tried") and not c["at_edge"]:
                how += (", the best setting tried (no surface through them opens upwards)"
                        if c["method"] == "best setting tried" else f", the {c['method']}")
            lines.append(f"  - N={_g(c['params'])}, D={_g(c['tokens'])}: optimum {_g(c['opt'])} from "
                         f"{c['n_values']} values{how}{edge}")
    return lines + [""] + _hparam_backtest(hp.get("backtest") or {})


def _hparam_backtest(bt: dict) -> list[str]:
    if not bt.get("cells"):
        return ["### Backtest of the hyperparameter laws", "",
                f"Skipped: {bt.get('skipped', 'no held-out cell with a fitted surface')}.", ""]
    lines = ["### Backtest of the hyperparameter laws", "",
             f"Laws refitted without each size (and each size's largest budget, with 3+ budgets) predict the "
             f"held-out cells' settings; the loss they cost over the cell's best: mean "
             f"{100 * bt['mean_penalty']:.3f}%, max {100 * bt['max_penalty']:.3f}% "
             f"(on the measured grid: mean "
             f"{100 * bt['mean_grid_penalty']:.3f}%), over {bt['n_cells']} held-out cell(s).", "",
             "| N | D | held out | predicted | optimum | penalty |", "|---|---|---|---|---|---|"]
    for c in bt["cells"]:
        pred = ", ".join(f"{k} {_g(v)}" for k, v in c["predicted"].items())
        opt = ", ".join(f"{k} {_g(v)}" for k, v in c["optimum"].items())
        lines.append(f"| {_g(c['params'])} | {_g(c['tokens'])} | {c['held_out']} | {pred} | {opt} | "
                     f"{100 * c['penalty']:.3f}%{' (outside the grid)' if c['outside_grid'] else ''} |")
    return lines + [""]


def _knobs(k: dict) -> list[str]:
    lines = ["## Seeds and knobs", "",
             f"Seed noise (pooled std of final loss over repeated settings): {_g(k['seed_std'])} "
             f"({k['seed_dof']} degrees of freedom).", ""]
    if not k["knobs"]:
        return lines + ["No knob was swept at a fixed size and token count.", ""]
    lines += [
        SIGN_CONVENTION,
        "",
        "| knob | verdict | comparisons (real / all) | largest effect | smallest Holm p |",
        "|---|---|---|---|---|",
    ]
    for name, v in k["knobs"].items():
        big = max(v["comparisons"], key=lambda c: abs(c["diff"]))
        ps = [c["p_holm"] for c in v["comparisons"] if c["p_holm"] is not None]
        lines.append(f"| {name} | **{v['verdict']}** | {v['n_real']}/{v['n_comparisons']} | {big['other']} − "
                     f"{big['best']}: {big['diff']:+.4f} | {_g(min(ps)) if ps else 'n/a'} |")
    for name, v in k["knobs"].items():
        a = v.get("across_cells")
        if a:  # mean_diff is second level minus first: put the better level second to keep one sign
            first, second = a["levels"]
            sign = 1.0 if a["mean_diff"] >= 0 else -1.0
            best, other = (first, second) if sign > 0 else (second, first)
            t = None if a["t"] is None else sign * a["t"]
            lines.append(
                f"\n{name} across {a['n_cells']} cells: {other} − {best} = {sign * a['mean_diff']:+.4f} "
                f"on average (t = {_g(t)}, p = {_g(a['p'])})."
            )
    multi = [s for s in k["settings"] if s["n"] > 1]
    if multi:
        lines += ["", "Repeated settings (mean ± std over seeds):", ""]
        lines += [
            f"- N={_g(s['params'])}, D={_g(s['tokens'])}, {s['knobs']}: {s['mean']:.4f} ± {s['std']:.4f} "
            f"(n={s['n']})"
            for s in multi[:20]
        ]
    return lines + [""]


def _knob_effects(result: dict) -> list[str]:
    effects, chosen = result.get("knob_effects") or {}, result["recommendation"].get("knobs", {})
    notes = result.get("knob_notes") or []
    if not effects and not notes:
        return []
    rec = result["recommendation"]
    lines = [
        "## Knobs at the target",
        "",
        f"Each knob level gets its own law, then is judged at the recommended run (N={_g(rec['params'])}, "
        f"D={_g(rec['tokens'])}). The *compute multiplier* of a level is the compute it needs to reach the "
        "best level's predicted loss, divided by the target's compute "
        "(the run grown along its own tokens per "
        "parameter): 1.3 means that level wastes 30% of the compute. A *crossover* is the compute where two "
        "levels' losses are equal: beyond it the other level wins. " + SIGN_CONVENTION,
        "",
    ]
    for knob, e in effects.items():
        best = e["best"]
        lines += [
            f"### {knob}: **{e['verdict']}** -> {best}",
            "",
            f"{e['advice']}. Law: {e['law']} ({e['law_choice']['why']}); "
            + (f"other knobs held at {e['held_at']}; " if e["held_at"] else "")
            + f"{e['n_boot']} bootstrap refits over runs.",
            "",
            "| level | predicted loss | interval | difference to best | compute multiplier | crossover FLOPs "
            "| runs | sizes |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, lv in e["levels"].items():
            d, m = e["difference"][name], e["multiplier"][name]
            cross = e["crossover_flops"].get(name)
            lines.append(f"| {name}{' (best)' if name == best else ''} | {_g(lv['loss'], 4)} | "
                         f"{_ci([lv['lo'], lv['hi']], 4) if lv['lo'] is not None else 'n/a'} | "
                         f"{d['value']:+.4f} {_ci([d['lo'], d['hi']]) if d['lo'] is not None else ''} | "
                         f"{_g(m['value'])} {_ci([m['lo'], m['hi']]) if m['lo'] is not None else ''} | "
                         f"{_g(cross) if cross else 'none in range'} | {lv['n_runs']} | "
                         f"{', '.join(_g(s) for s in lv['sizes'])} |")
        if e.get("best_at_largest_size") is not None:
            lines.append(f"\nAt the largest size tried (N={_g(e['largest_size'])}) the best level was "
                         f"{e['best_at_largest_size']}.")
        if knob in chosen:
            k = chosen[knob]
            where = "large_run.yaml sets it" if k["in_config"] else "not a config key: set it yourself"
            lines.append(f"\nThe large run takes **{k['level']}** ({k['why']}; {where}).")
        lines.append("")
    lines += [f"- {n}" for n in notes]
    return lines + ([""] if notes else [])


def _downstream(ds: dict | None) -> list[str]:
    """The two-step accuracy prediction: the task-bpb law, the sigmoid, the runs, the predictions."""
    if not ds:
        return []
    b, s = ds["bpb_law"], ds["acc_law"]
    level = f"{100 * ds['ci_level']:.0f}%"
    lines = [
        f"## Downstream: {ds['metric']} in two steps",
        "",
        f"Accuracy is no power law in N and D, so the scaling laws above are fitted to the task's bits per "
        f"byte ({ds['bpb_metric']}) and accuracy is predicted from it; {ds['n_runs']} tuned runs, "
        f"{ds['n_boot']} bootstrap refits of both steps over runs.",
        "",
        f"1. **Task bpb from N and D**: bpb = {_g(b['E'], 4)} + {_g(b['A'])}/N^{_g(b['alpha'])} + "
        f"{_g(b['B'])}/D^{_g(b['beta'])} (residual std of log bpb {_g(b['residual_std'])}).",
        f"2. **Accuracy from task bpb**: acc = {_g(s['floor'])} + ({_g(s['ceiling'])} − {_g(s['floor'])}) / "
        f"(1 + exp({_g(s['k'])}·(bpb − {_g(s['x0'], 4)}))), floor at chance {_g(ds['chance'])} "
        f"({ds['chance_source']}); residual std {_g(s['residual_std'])}.",
        "",
        "| run | params | tokens | task bpb | accuracy | sigmoid |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['run']} | {_g(r['params'])} | {_g(r['tokens'])} | {_g(r['bpb'], 4)} | {_g(r['acc'])} | "
            f"{_g(r['acc_fit'])} |"
            for r in ds["runs"]
        ],
        "",
        f"| params | tokens | task bpb | {level} interval | accuracy | {level} interval |",
        "|---|---|---|---|---|---|",
    ]
    for p in ds["predictions"]:
        mark = " (recommended)" if p["recommended"] else ""
        lines.append(f"| {_g(p['params'])}{mark} | {_g(p['tokens'])} | {_g(p['bpb'], 4)} | "
                     f"{_ci([p['bpb_lo'], p['bpb_hi']], 4) if p['bpb_lo'] is not None else 'n/a'} | "
                     f"{_g(p['acc'])} | {_ci([p['lo'], p['hi']]) if p['lo'] is not None else 'n/a'} |")
    notes = sorted({n for p in ds["predictions"] for n in p["notes"]})
    return lines + [""] + [f"- {n}" for n in notes] + ([""] if notes else [])


def _backtest(bt: dict) -> list[str]:
    if "skipped" in bt:
        return ["## Backtest", "", f"Skipped: {bt['skipped']}.", ""]
    return [
        "## Backtest: leave the largest size out",
        "",
        f"Fitted on {bt['n_fitted']} runs below N={_g(bt['held_out_params'])}, "
        f"predicted its {bt['n_held_out']} "
        f"run(s): mean |error| {100 * bt['mean_abs_rel_error']:.2f}%, "
        f"max {100 * bt['max_abs_rel_error']:.2f}%, "
        f"bias {100 * bt['mean_rel_error']:+.2f}%; {bt['within_interval']}/{bt['n_held_out']} inside the "
        f"prediction interval"
        + (
            f" (bootstrap of the smaller sizes, {bt['interval_bootstrap']} refits, plus residual noise)."
            if bt.get("interval_bootstrap")
            else " (residual noise only)."
        ),
        "",
    ]


def _mixture(m: dict | None) -> list[str]:
    if not m:
        return []
    level = f"{100 * m['ci_level']:.0f}%"
    target = " + ".join(f"{w:g}·{e}" for e, w in m["target"].items())
    ho = m["heldout"]
    target_ci = (_ci([m["target_loss"]["lo"], m["target_loss"]["hi"]], 4)
                 if m["target_loss"]["lo"] is not None else "")
    lines = [
        "## Data mixture",
        "",
        f"Law: **{m['law']}**, chosen by {ho['method']} error over {m['n_mixtures']} mixtures "
        f"({m['n_runs']} runs): held-out mean |error| {_g(ho['mae'])}, Spearman rank correlation "
        f"{_g(ho['rank_corr'], 2)}. Target: {target}; predicted {_g(m['target_loss']['value'], 4)} "
        f"{target_ci}"
        f" at the recommended weights.",
        "",
        "| form | constants per evaluation set | held-out MAE | held-out Spearman |",
        "|---|---|---|---|",
    ]
    for form, sc in m["forms"].items():
        lines.append(f"| {form} | {sc.get('n_parameters', 'n/a')} | {_g(sc.get('mae'))} | "
                     f"{_g(sc.get('rank_corr'), 2)} {sc.get('skipped', '')} |")
    nat = m.get("natural")
    lines += [
        "",
        f"| domain | recommended weight | {level} interval | natural weight | epochs at D | range searched |",
        "|---|---|---|---|---|---|",
    ]
    for d, w in m["weights"].items():
        ep = m["epochs"].get(d)
        lines.append(
            f"| {d} | {w['value']:.3f} | {_ci([w['lo'], w['hi']]) if w['lo'] is not None else 'n/a'} | "
            f"{_g(nat['weights'][d]) if nat else 'n/a'} | {_g(ep) if ep is not None else 'n/a'} | "
            f"{_ci(m['bounds'][d])} |"
        )
    lines += ["", "| evaluation set | predicted loss | interval of the mean law |" +
              (" at the natural mixture |" if nat else ""), "|---|---|---|" + ("---|" if nat else "")]
    for e, p in m["predicted"].items():
        lines.append(
            f"| {e} | {_g(p['loss'], 4)} | {_ci([p['lo'], p['hi']], 4) if p['lo'] is not None else 'n/a'} |"
            + (f" {_g(nat['predicted'][e], 4)} |" if nat else "")
        )
    lines += [
        "",
        f"D = {_g(m['large_tokens'])} tokens; each domain is capped at --max-epochs {_g(m['max_epochs'])} "
        "repetitions of its tokens. large_run.yaml carries these weights as `data.mixture`"
        + (
            ""
            if m.get("domain_paths")
            else " (with each domain's name as its path: point it at the prepared dataset)"
        )
        + ".",
    ]
    if m.get("size_trend"):
        lines += ["", f"By size: {m['size_trend']}."]
    if m.get("candidates"):
        lines += [
            "",
            "Candidate mixtures (--predict-mixtures), best first:",
            "",
            "| weights | " + " | ".join(m["eval_sets"]) + " | target |",
            "|---|" + "---|" * (len(m["eval_sets"]) + 1),
        ]
        for c in sorted(m["candidates"], key=lambda c: c["target_loss"]):
            ws = ", ".join(f"{d}={v:.3g}" for d, v in c["weights"].items())
            lines.append(f"| {ws} | " + " | ".join(_g(c["predicted"][e], 4) for e in m["eval_sets"])
                         + f" | {_g(c['target_loss'], 4)} |")
    lines += [""] + [f"- {n}" for n in m["notes"]]
    return lines + [""]


def _mixture_only_report(result: dict) -> str:
    lines = ["# Data-mixture fit", "", f"{result['inputs']['n_rows']} runs read.", ""]
    lines += ["## Warnings", "", *[f"- {w}" for w in result["warnings"]], ""]
    lines += _mixture(result["mixture"])
    lines += [f"Config: `{result['outputs']['large_run']}`.", ""]
    plots = result["outputs"].get("plots", {})
    lines += [f"![{name}]({Path(path).name})" for name, path in plots.items()]
    return "\n".join(lines) + "\n"


def render_report(result: dict) -> str:
    """The Markdown report of a fit.json dict."""
    if "parametric" not in result:
        return _mixture_only_report(result)
    level = f"{100 * result['parametric']['ci_level']:.0f}%"
    lines = ["# Scaling-law fit", "",
             f"{result['inputs']['n_rows']} runs read, {result['inputs']['n_fitted']} in the approach-3 fit "
             f"(params: {result['inputs']['params_kind']}). Fitted metric: "
             f"{metric_label(result['inputs'].get('metric', 'loss'))}; every loss below is in its units.", ""]
    if result["warnings"]:
        lines += ["## Warnings", "", *[f"- {w}" for w in result["warnings"]], ""]
    lines += _recommendation(result["recommendation"], level)
    lines += _parametric(result["parametric"], level)
    lines += _approaches(result)
    lines += ["## Predictions", "",
              "| params | tokens | loss | prediction interval | interval of the mean | lr | batch (tokens) |",
              "|---|---|---|---|---|---|---|"]
    lines += [
        f"| {_g(p['params'])} | {_g(p['tokens'])} | {_g(p['loss'], 4)} | {_ci([p['lo'], p['hi']], 4)} | "
        f"{_ci(p['mean_ci'], 4)} | {_hparam_cell(p, 'lr', 'lr_ci')} | "
        f"{_hparam_cell(p, 'batch_tokens', 'batch_ci')} |"
        for p in result["predictions"]
    ] + [""]
    lines += _downstream(result.get("downstream"))
    lines += _backtest(result["backtest"])
    lines += _hparams(result["hparams"], result["recommendation"])
    lines += _knob_effects(result)
    lines += _mixture(result.get("mixture"))
    lines += _knobs(result["knobs"])
    plots, not_made = result["outputs"].get("plots", {}), result["outputs"].get("plots_not_made", {})
    if plots or not_made:
        lines += ["## Plots", "", *[f"![{name}]({Path(path).name})" for name, path in plots.items()], ""]
        lines += [f"- `{name}` was not made: {why}." for name, why in not_made.items()]
    return "\n".join(lines)


def write_report(result: dict, path) -> None:
    atomic_write_text(path, render_report(result))
