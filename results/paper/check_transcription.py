#!/usr/bin/env python3
"""Validate the frozen transcription of HKT (arXiv 2508.09743) Tables 1-3 and text claims.

Usage:
    python check_transcription.py [--paper PATH_TO_PAPER_TEXT]

Checks
  * results.csv / claims.csv have exactly the expected columns, in order;
  * every row validates against schema.json ($defs/result_row, $defs/claim_row)
    after parsing value -> float and approx/parenthesised 'true'/'false' -> bool
    (jsonschema is used when importable, otherwise a small built-in validator);
  * cross-field rules (table -> task, method -> role, metric/dataset/split per column);
  * Tables 1, 2 and 3 are re-derived from the paper text file (tab-separated lines):
    each numeric cell must match exactly one CSV row (same row label, column
    semantics, value string as printed, approx and parenthesised flags) and
    vice versa; per-table counts are printed;
  * every claim quote occurs verbatim in the paper text and contains its value
    and direction word.
Exits non-zero on any mismatch.
"""
import argparse
import json
import os
import re
import sys
from collections import Counter

import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PAPER = "/work/shared/seeds/003_a3ea8a8095b2b47d.txt"

RESULT_COLS = ["table", "task", "row", "method", "role", "training", "dataset", "split",
               "metric", "value", "approx", "parenthesised", "source"]
CLAIM_COLS = ["claim_id", "task", "section", "quantity", "comparison", "value", "unit",
              "direction", "quote"]

TASK_OF_TABLE = {"table1": "flow", "table2": "cifar10", "table3": "lits"}
# method id -> role, per table
METHOD_ROLE = {
    "table1": {"pwcnet": "literature", "liteflownet2": "literature", "flowid": "literature",
               "gmflow": "literature", "flowformer": "literature", "gmflownet": "literature",
               "vcn": "literature", "raft_parent": "parent", "raft_child": "child",
               "draft": "baseline_kd", "hkt2": "ours", "hkt3": "ours"},
    "table2": {"parent": "parent", "child": "child", "hkt2": "ours"},
    "table3": {"parent": "parent", "child": "child", "hkt3": "ours"},
}
# Expected row label of each method (labels as printed, markup stripped)
METHOD_ROW = {
    "table1": {"pwcnet": "PWC-Net (Sun et al. 2018)",
               "liteflownet2": "LiteFlowNet/2 (Hui, Tang, and Loy 2018, 2020)",
               "flowid": "FlowID (Xu et al. 2021a)", "gmflow": "GMFlow (Xu et al. 2021c)",
               "flowformer": "FlowFormer (Huang et al. 2022)", "gmflownet": "GMFlowNet",
               "vcn": "VCN (Yang and Ramanan 2019)",
               "raft_parent": "RAFT (P) (Teed and Deng 2020a)", "raft_child": "RAFT (C) Baseline",
               "draft": "DRAFT (Tchenko, Abdelkader, and Tabia 2024)",
               "hkt2": "2HKT-RAFT (Ours)", "hkt3": "3HKT-RAFT (Ours)"},
    "table2": {"parent": "P", "child": "C", "hkt2": "Ours"},
    "table3": {"parent": "P", "child": "C", "hkt3": "Ours"},
}
REQUIRED_CLAIMS = ["third_stage_mu", "third_stage_sintel_clean_epe", "third_stage_kitti_fl_all",
                   "no_ga_mu", "no_ga_sintel_clean_epe", "no_mixture_epe",
                   "train_iters_3hkt_vs_2hkt", "train_overhead_3hkt_vs_kd",
                   "params_reduction_vs_parent", "inference_speedup_vs_parent",
                   "cifar_relative_error_reduction"]
NUMBER_WORDS = {"half": 0.5}
NUM_RE = re.compile(r"^\d+(\.\d+)?$")

errors = []


def err(msg):
    errors.append(msg)


# --------------------------------------------------------------------------- schema
def mini_validate(inst, schema, root, path="$"):
    """Tiny subset of JSON Schema (type/enum/const/pattern/min*/required/
    additionalProperties/$ref/allOf/if-then). Used only without jsonschema."""
    out = []
    if "$ref" in schema:
        ref = schema["$ref"]
        node = root
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return mini_validate(inst, node, root, path)
    t = schema.get("type")
    tmap = {"object": dict, "string": str, "boolean": bool}
    if t == "number":
        if isinstance(inst, bool) or not isinstance(inst, (int, float)):
            return [f"{path}: not a number: {inst!r}"]
    elif t in tmap and not isinstance(inst, tmap[t]):
        return [f"{path}: not {t}: {inst!r}"]
    if "enum" in schema and inst not in schema["enum"]:
        out.append(f"{path}: {inst!r} not in {schema['enum']}")
    if "const" in schema and inst != schema["const"]:
        out.append(f"{path}: {inst!r} != {schema['const']!r}")
    if "pattern" in schema and isinstance(inst, str) and not re.search(schema["pattern"], inst):
        out.append(f"{path}: {inst!r} does not match {schema['pattern']}")
    if "minLength" in schema and isinstance(inst, str) and len(inst) < schema["minLength"]:
        out.append(f"{path}: too short")
    if "minimum" in schema and inst < schema["minimum"]:
        out.append(f"{path}: {inst} < {schema['minimum']}")
    if "exclusiveMinimum" in schema and inst <= schema["exclusiveMinimum"]:
        out.append(f"{path}: {inst} <= {schema['exclusiveMinimum']}")
    if isinstance(inst, dict):
        for k in schema.get("required", []):
            if k not in inst:
                out.append(f"{path}: missing {k}")
        props = schema.get("properties", {})
        for k, v in inst.items():
            if k in props:
                out += mini_validate(v, props[k], root, f"{path}.{k}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{path}: additional property {k}")
    for sub in schema.get("allOf", []):
        if "if" in sub:
            if not mini_validate(inst, sub["if"], root, path):
                out += mini_validate(inst, sub.get("then", {}), root, path)
        else:
            out += mini_validate(inst, sub, root, path)
    return out


def make_validator(schema, name):
    sub = {"$schema": schema.get("$schema"), "$defs": schema["$defs"], "$ref": f"#/$defs/{name}"}
    try:
        import jsonschema  # noqa: F401
        from jsonschema import Draft202012Validator
        Draft202012Validator.check_schema(schema)
        v = Draft202012Validator(sub)
        return lambda inst: [f"{'.'.join(map(str, e.absolute_path)) or '$'}: {e.message}"
                             for e in v.iter_errors(inst)], "jsonschema"
    except ImportError:
        return lambda inst: mini_validate(inst, sub, sub), "builtin"


def parse_bool(s, where):
    if s == "true":
        return True
    if s == "false":
        return False
    err(f"{where}: boolean must be 'true'/'false', got {s!r}")
    return None


def parse_num(s, where):
    if not NUM_RE.match(s):
        err(f"{where}: value {s!r} is not a plain non-negative decimal literal")
        return None
    return float(s)


# --------------------------------------------------------------------------- paper
def strip_markup(cell):
    cell = re.sub(r"</?(b|u|i|em|strong)>", "", cell)
    cell = re.sub(r"\s*\$\\mathcal\{(\w+)\}\$\s*", r" \1 ", cell)  # $\mathcal{P}$ -> P
    cell = re.sub(r"\(\s*(\w+)\s*\)", r"(\1)", cell)
    return re.sub(r"\s+", " ", cell).strip()


def parse_cell(raw):
    """-> None for '-', else list of (value_str, approx, parenthesised) (2 items for ranges)."""
    c = strip_markup(raw)
    if c in ("-", "–", ""):
        return None
    approx = False
    if c.startswith("~"):
        approx, c = True, c[1:].strip()
    par = False
    if c.startswith("(") and c.endswith(")"):
        par, c = True, c[1:-1].strip()
    c = c.rstrip("%").strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*[–-]\s*(\d+(?:\.\d+)?)", c)
    if m:
        return [(m.group(1), approx, par), (m.group(2), approx, par)]
    if not NUM_RE.match(c):
        raise ValueError(f"unparseable table cell {raw!r}")
    return [(c, approx, par)]


def find_line(lines, prefix):
    idx = [i for i, l in enumerate(lines) if l.startswith(prefix)]
    if len(idx) != 1:
        raise ValueError(f"expected exactly one line starting with {prefix!r}, found {len(idx)}")
    return idx[0]


def data_rows(lines, start, ncols):
    rows = []
    i = start
    while i < len(lines) and lines[i].count("\t") == ncols - 1:
        rows.append(lines[i].split("\t"))
        i += 1
    return rows


def derive_paper_rows(paper_text):
    lines = paper_text.splitlines()
    out = []          # tuples (table, row, training, dataset, split, metric, value, approx, par)
    ncells = Counter()

    # ---- Table 1: two header lines, group header forward-filled
    h = find_line(lines, "Method\tC+T\t")
    g = lines[h].split("\t")
    sub = [s.replace("↓", "").replace("↑", "").strip() for s in lines[h + 1].split("\t")]
    assert len(g) == len(sub) == 16, "Table 1 header must have 16 fields"
    groups, cur = [], None
    for x in g:
        cur = x.strip() if x.strip() else cur
        groups.append(cur)
    sub_map = {"S-C": ("sintel-clean", "epe"), "S-F": ("sintel-final", "epe"),
               "K-E": ("kitti-2015", "epe"), "K-All": ("kitti-2015", "fl_all")}
    colsem = [None]
    for grp, s in zip(groups[1:], sub[1:]):
        if grp in ("C+T", "C+T+S/K", "C+T+S+K+H"):
            ds, me = sub_map[s]
            colsem.append((grp, ds, "train", [me]))
        elif grp == "KITTI Test" and s == "F1-All":
            colsem.append(("-", "kitti-2015", "test", ["fl_all"]))
        elif grp == "Params" and s == "(M)":
            colsem.append(("-", "-", "-", ["params_m"]))
        elif grp == "Inf." and s == "(ms)":
            colsem.append(("-", "-", "-", ["inference_ms"]))
        else:
            raise ValueError(f"unknown Table 1 column {grp!r}/{s!r}")
    t1 = data_rows(lines, h + 2, 16)
    assert len(t1) == 12, f"Table 1 should have 12 data rows, found {len(t1)}"
    for cells in t1:
        label = strip_markup(cells[0])
        for j in range(1, 16):
            p = parse_cell(cells[j])
            if p is None:
                continue
            ncells["table1"] += 1
            tr, ds, sp, mets = colsem[j]
            for (v, a, par), me in zip(p, mets):
                out.append(("table1", label, tr, ds, sp, me, v, a, par))

    # ---- Tables 2 and 3: one model per row, three rows each
    t2_metrics = {"Prec. (%)": ["top1_acc"], "Error (%)": ["top1_err"], "Params (M)": ["params_m"],
                  "Inf. (ms)": ["inference_ms"]}
    t3_metrics = {"D-Mean": ["dice_mean"], "Inf. (s)": ["inference_s_min", "inference_s_max"],
                  "Params (M)": ["params_m"]}
    for table, header, metrics, dataset in (("table2", "Model\tPrec. (%)", t2_metrics, "cifar10"),
                                            ("table3", "Model\tD-Mean", t3_metrics, "lits")):
        h = find_line(lines, header)
        head = [s.replace("↓", "").replace("↑", "").strip() for s in lines[h].split("\t")]
        rows = data_rows(lines, h + 1, len(head))
        assert len(rows) == 3, f"{table} should have 3 data rows, found {len(rows)}"
        for cells in rows:
            label = strip_markup(cells[0])
            for j in range(1, len(head)):
                p = parse_cell(cells[j])
                if p is None:
                    continue
                ncells[table] += 1
                mets = metrics[head[j]]
                assert len(p) == len(mets), f"{table} cell {cells[j]!r}"
                for (v, a, par), me in zip(p, mets):
                    out.append((table, label, "-", dataset, "test", me, v, a, par))
    return out, ncells


# --------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--paper", default=os.environ.get("HKT_PAPER_TEXT", DEFAULT_PAPER))
    ap.add_argument("--dir", default=HERE)
    args = ap.parse_args()

    schema = json.load(open(os.path.join(args.dir, "schema.json"), encoding="utf-8"))
    v_res, engine = make_validator(schema, "result_row")
    v_cla, _ = make_validator(schema, "claim_row")
    print(f"schema validation engine: {engine}")

    read = dict(dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8")
    res = pd.read_csv(os.path.join(args.dir, "results.csv"), **read)
    cla = pd.read_csv(os.path.join(args.dir, "claims.csv"), **read)
    if list(res.columns) != RESULT_COLS:
        err(f"results.csv columns {list(res.columns)} != {RESULT_COLS}")
    if list(cla.columns) != CLAIM_COLS:
        err(f"claims.csv columns {list(cla.columns)} != {CLAIM_COLS}")
    if errors:
        return finish()

    # ---- results rows
    csv_keys = []
    for i, r in res.iterrows():
        where = f"results.csv line {i + 2}"
        inst = dict(r)
        inst["value"] = parse_num(r["value"], where)
        inst["approx"] = parse_bool(r["approx"], where)
        inst["parenthesised"] = parse_bool(r["parenthesised"], where)
        if None in (inst["value"], inst["approx"], inst["parenthesised"]):
            continue
        for e in v_res(inst):
            err(f"{where}: schema: {e}")
        t = r["table"]
        if t not in TASK_OF_TABLE:
            continue
        if r["task"] != TASK_OF_TABLE[t]:
            err(f"{where}: task {r['task']} != {TASK_OF_TABLE[t]}")
        role = METHOD_ROLE[t].get(r["method"])
        if role is None:
            err(f"{where}: method {r['method']!r} not allowed in {t}")
        elif role != r["role"]:
            err(f"{where}: role {r['role']!r} != {role!r} for method {r['method']}")
        if METHOD_ROW[t].get(r["method"]) != r["row"]:
            err(f"{where}: row label {r['row']!r} does not belong to method {r['method']!r}")
        csv_keys.append((t, r["row"], r["training"], r["dataset"], r["split"], r["metric"],
                         r["value"], r["approx"] == "true", r["parenthesised"] == "true"))
    dup = res.duplicated(subset=["table", "method", "training", "dataset", "split", "metric"], keep=False)
    for i in res.index[dup]:
        err(f"results.csv line {i + 2}: duplicate (table, method, training, dataset, split, metric)")

    # ---- cross-check against the paper text
    paper = open(args.paper, encoding="utf-8").read()
    try:
        paper_keys, ncells = derive_paper_rows(paper)
    except (ValueError, AssertionError) as e:
        err(f"could not re-derive tables from {args.paper}: {e}")
        return finish()
    cp, cc = Counter(paper_keys), Counter(csv_keys)
    for k in sorted((cp - cc).elements(), key=str):
        err(f"paper cell missing/mismatched in results.csv: {k}")
    for k in sorted((cc - cp).elements(), key=str):
        err(f"results.csv row not matching any paper cell: {k}")
    for k, n in cp.items():
        if n > 1:
            err(f"paper cell key occurs {n} times (ambiguous): {k}")

    print(f"{'table':8s} {'paper cells':>11s} {'paper rows':>10s} {'csv rows':>8s}")
    for t in ["table1", "table2", "table3"]:
        prow = sum(1 for k in paper_keys if k[0] == t)
        crow = int((res["table"] == t).sum())
        ok = "OK" if prow == crow else "MISMATCH"
        print(f"{t:8s} {ncells[t]:11d} {prow:10d} {crow:8d}  {ok}")
        if prow != crow:
            err(f"{t}: {prow} numeric values in paper vs {crow} rows in results.csv")
    print(f"{'total':8s} {sum(ncells.values()):11d} {len(paper_keys):10d} {len(res):8d}")

    # ---- claims
    if cla["claim_id"].duplicated().any():
        err(f"duplicate claim_id: {sorted(cla.loc[cla['claim_id'].duplicated(), 'claim_id'])}")
    for cid in REQUIRED_CLAIMS:
        if cid not in set(cla["claim_id"]):
            err(f"claims.csv: required claim_id {cid} missing")
    for i, r in cla.iterrows():
        where = f"claims.csv line {i + 2} ({r['claim_id']})"
        inst = dict(r)
        inst["value"] = parse_num(r["value"], where)
        if inst["value"] is None:
            continue
        for e in v_cla(inst):
            err(f"{where}: schema: {e}")
        q = r["quote"]
        if q not in paper:
            err(f"{where}: quote not found verbatim in paper text")
        if not re.search(r"(?<![\w.])" + re.escape(r["direction"]) + r"(?!\w)", q):
            err(f"{where}: direction {r['direction']!r} not in quote")
        nums = {float(x) for x in re.findall(r"\d+(?:\.\d+)?", q)}
        nums |= {v for w, v in NUMBER_WORDS.items() if re.search(rf"\b{w}\b", q)}
        if inst["value"] not in nums:
            err(f"{where}: value {r['value']} not found in quote")
    print(f"claims   {len(cla):d} rows")
    return finish()


def finish():
    if errors:
        print(f"\nFAILED: {len(errors)} problem(s)")
        for e in errors:
            print("  -", e)
        return 1
    print("\nALL CHECKS PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
