"""Fast exact predictions and SHAP contributions of a LightGBM booster, same numbers as LightGBM.

Two tools, both built once per model version and proven equal to LightGBM on real models (tests):

* :func:`compile_forest`: the booster compiled to native code with ``lleaves`` (LLVM), cached on
  disk by a hash of the model text. The predictions are **bit-identical** to ``Booster.predict``:
  lleaves sums the trees of a row block by block (34 trees a block, for the instruction cache) and
  adds each block's sum to the row's total, which rounds differently from LightGBM's one running
  sum; :func:`_ordered_instruction_block` makes every block continue the row's running sum instead,
  so the additions happen in LightGBM's order (same speed). 1,463 trees of 8 leaves: about 4 us of
  CPU a row instead of 100+ us; compiling takes 15-30 s once per version (then a cache hit, ms).
* :func:`compile_shap`: LightGBM's ``pred_contrib`` (path-dependent TreeSHAP), compiled. A tree's
  TreeSHAP values depend on a row only through the decision taken at each internal node, so a tree
  of ``k`` internal nodes has at most ``2**k`` different answers. They are computed once per model
  (:func:`_tree_shap`, a port of LightGBM's ``Tree::TreeSHAP``, tested against the Shapley
  definition) and compiled with lleaves' code generator as one complete decision tree per (tree,
  feature) over the tree's own splits, whose leaves hold the values: a forest with one output per
  feature. Same algorithm and inputs, summed in another order: within ~1e-15 of ``pred_contrib``
  (tested), about 4 us a row instead of 50-100 us. Limits :data:`MAX_TABLE_NODES` and
  :data:`MAX_SHAP_NODES` (:func:`shap_table_nodes`); past them callers use ``pred_contrib``.

The compiled code is cached on disk (:func:`default_cache_dir`), keyed by the model text, the
lleaves/llvmlite versions and the host CPU. Both functions take a booster's model text
(``Booster.model_to_string()``). LightGBM reads a dense row's values within 1e-35 of zero as zero;
lleaves does not, so both tools zero them first (:func:`_as_lightgbm_reads`).

lleaves 1.3 needs llvmlite < 0.45 (its legacy pass manager), whose wheels stop at CPython 3.13
(pyproject.toml installs them there): :func:`available` says whether they are importable, and
callers fall back to LightGBM's own predictor (the same numbers, slower) when they are not.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_TABLE_NODES = 8  # internal nodes per tree: 2**8 table rows per tree at most
# decision nodes of the SHAP forest before merging (each tree: features x (2**nodes - 1)); compiling
# costs about 1 ms a node, so past this LightGBM's pred_contrib is used instead
MAX_SHAP_NODES = 60_000
_ZERO = 1e-35  # LightGBM's kZeroThreshold
_log = logging.getLogger(__name__)
_AVAILABLE: bool | None = None


def available() -> bool:
    """True when lleaves and llvmlite import (CPython 3.11-3.13); else scoring uses LightGBM, logged once."""
    global _AVAILABLE
    if _AVAILABLE is None:
        try:
            import lleaves  # noqa: F401
            import llvmlite.binding  # noqa: F401
        except ImportError as exc:
            _AVAILABLE = False
            _log.warning(
                "the compiled scorer is off (%s; lleaves 1.3 needs llvmlite<0.45, which has wheels for "
                "Python 3.11-3.13 only): scoring uses LightGBM's predictor, same numbers, slower",
                exc,
            )
        else:
            _AVAILABLE = True
    return _AVAILABLE


# ---------------------------------------------------------------------------------------------------
# compiled predictions (lleaves)


def _ordered_instruction_block(
    instr_block_idx, forest, root_func, tree_funcs, setup_block, next_block, eval_obj_func, use_fp64
):
    """Lleaves 1.3's ``_populate_instruction_block`` with LightGBM's order of additions.

    Copied from lleaves (MIT licence, lleaves/compiler/codegen/codegen.py); the one change: a block
    after the first starts from the row's stored running sum and adds its trees to it one by one,
    instead of adding its own sum (``(t0 + ... + t33) + (t34 + ...)`` rounds differently from
    ``((t0 + t1) + ...) + t34``, LightGBM's order).
    """
    from lleaves.compiler.codegen import codegen as cg
    from llvmlite import ir

    data_arr, out_arr, start_index, end_index = root_func.args
    builder = ir.IRBuilder(setup_block)
    start_index = builder.zext(start_index, cg.LONG)
    end_index = builder.zext(end_index, cg.LONG)
    loop_iter = builder.alloca(cg.LONG, 1, "loop-idx")
    builder.store(start_index, loop_iter)
    condition_block = root_func.append_basic_block("loop-condition")
    builder.branch(condition_block)

    builder = ir.IRBuilder(condition_block)
    comp = builder.icmp_signed("<", builder.load(loop_iter), end_index)
    core_block = root_func.append_basic_block("loop-core")
    builder.cbranch(comp, core_block, next_block)

    builder = ir.IRBuilder(core_block)
    args = []
    loop_iter_reg = builder.load(loop_iter)
    n_args = ir.Constant(cg.LONG, forest.n_args)
    iter_mul_nargs = builder.mul(loop_iter_reg, n_args)
    idx = (builder.add(iter_mul_nargs, cg.lconst(i)) for i in range(forest.n_args))
    raw_ptrs = [builder.gep(root_func.args[0], (c,)) for c in idx]
    for feature, ptr in zip(forest.features, raw_ptrs, strict=True):
        el = builder.load(ptr)
        if feature.is_categorical:
            is_nan = builder.fcmp_ordered("uno", el, cg.get_fdtype_const(0.0, use_fp64))
            el = builder.select(is_nan, cg.iconst(-(2**31)), builder.fptosi(el, cg.INT_CAT))
        args.append(el)
    res_idx = builder.mul(cg.lconst(forest.n_classes), loop_iter_reg)
    results_ptr = [
        builder.gep(out_arr, (builder.add(res_idx, cg.lconst(class_idx)),))
        for class_idx in range(forest.n_classes)
    ]
    if instr_block_idx > 0:  # continue the running sum (the change)
        results = [builder.load(ptr) for ptr in results_ptr]
    else:
        results = [cg.get_fdtype_const(0.0, use_fp64) for _ in range(forest.n_classes)]
    for func in tree_funcs:
        tree_res = builder.call(func.llvm_function, args)
        results[func.class_id] = builder.fadd(results[func.class_id], tree_res)
    if eval_obj_func:
        results = cg._populate_objective_func_block(
            builder, results, forest.objective_func, forest.objective_func_config, forest.raw_score,
            forest.average_output, len(forest.trees), use_fp64,
        )  # fmt: skip
    for result, result_ptr in zip(results, results_ptr, strict=True):
        builder.store(result, result_ptr)
    builder.store(builder.add(loop_iter_reg, cg.lconst(1)), loop_iter)
    builder.branch(condition_block)


def _patch_lleaves() -> None:
    from importlib.metadata import version

    from lleaves.compiler.codegen import codegen

    if version("lleaves") != "1.3.0":
        raise RuntimeError(
            f"fast_trees patches lleaves 1.3.0's code generator; found lleaves {version('lleaves')}"
        )
    codegen._populate_instruction_block = _ordered_instruction_block


@dataclass
class CompiledForest:
    """A booster compiled to native code; ``predict`` gives what ``Booster.predict`` gives, bit for bit."""

    model: Any  # lleaves.Model, compiled
    n_features: int
    cache_file: Path

    def predict(self, matrix: np.ndarray, n_jobs: int = 1) -> np.ndarray:
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(f"matrix has shape {matrix.shape}; the model takes {self.n_features} columns")
        if len(matrix) == 0:
            return np.empty(0)
        matrix = _as_lightgbm_reads(matrix)
        out = np.empty(
            len(matrix)
        )  # the compiled function called directly (lleaves' checks cost ~20 us a call)
        _run(self.model._c_entry_func, matrix, out, n_jobs)
        return out


def _pointer(array: np.ndarray) -> Any:
    import ctypes

    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_double))


_BLOCK_ROWS = 16_384


def _run(entry: Any, matrix: np.ndarray, out: np.ndarray, n_jobs: int) -> None:
    """Call a compiled ``(data, out, start, end)`` function over all rows, in blocks shared by `n_jobs`
    threads (the code runs without the GIL); small blocks keep both threads busy to the end even when
    one of them is descheduled by other work on the machine.
    """
    n = len(matrix)
    data, target = _pointer(matrix), _pointer(out)
    if n_jobs <= 1 or n <= _BLOCK_ROWS:
        entry(data, target, 0, n)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n_jobs) as pool:
        list(
            pool.map(
                lambda start: entry(data, target, start, min(start + _BLOCK_ROWS, n)),
                range(0, n, _BLOCK_ROWS),
            )
        )


def _as_lightgbm_reads(matrix: np.ndarray) -> np.ndarray:
    """C-contiguous float64 with the values LightGBM drops from a dense row (|x| <= 1e-35) set to 0.0."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        tiny = np.abs(matrix) <= _ZERO
    tiny &= matrix != 0.0
    return np.where(tiny, 0.0, matrix) if tiny.any() else matrix


def _host_key() -> str:
    import llvmlite.binding as llvm

    llvm.initialize()
    llvm.initialize_native_target()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:
        features = ""
    return f"{llvm.get_process_triple()}|{llvm.get_host_cpu_name()}|{features}"


def default_cache_dir() -> Path:
    """Where compiled models are kept: ``$MLOPS_MODEL_CACHE`` if set (on a cluster, a shared folder, so
    a new champion is compiled once, not once per worker: the key names the CPU, so machines of
    different CPUs never share an object file), else ``$XDG_CACHE_HOME`` or ``~/.cache``, under
    mlops_assets/forests.
    """
    from mlops_assets.lib import settings

    if settings.is_set("MLOPS_MODEL_CACHE"):
        return Path(settings.env("MLOPS_MODEL_CACHE"))
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")  # the XDG standard's, not ours
    return Path(base) / "mlops_assets" / "forests"


# Compiling costs about 4 ms of CPU per leaf here (measured: 11.7k leaves 42-60 s; 110k leaves, the two
# champions trained on 1M tasks, about 450 s and 6.5 GB of peak memory), and saves about 0.1 ms of
# LightGBM's CPU per 1,000 trees per row. A batch that scores once (the scores asset after a retrain)
# loses time compiling a forest past this size; callers that serve for hours (the online service) still win.
MAX_BATCH_COMPILE_LEAVES = 20_000
# A one-off batch compiles a model that is not in the cache only when native code saves more than the
# compiling costs. Measured here (2026-12-04, the champions of a 3,000-task run: 221 trees / 1,326 leaves
# and 541 / 9,620): LightGBM predicts at 4-5 ns per leaf per row and compiling costs 1.4-5.5 ms per leaf,
# so the forest pays back from about 600,000 rows whatever its size; pred_contrib costs ~130 ns per leaf
# per row and the SHAP tables ~2.7 ms per node (~23 nodes per leaf): from about 500,000 explained rows.
# Below these a batch scores with LightGBM (the same numbers); the online service compiles in the
# background and later batches find the code in the cache.
BATCH_COMPILE_MIN_ROWS = 600_000
BATCH_SHAP_COMPILE_MIN_ROWS = 500_000


def forest_leaves(booster: Any) -> int:
    """Leaves of every tree of `booster`, the measure of its compile time."""
    return int(sum(t["num_leaves"] for t in booster.dump_model()["tree_info"]))


def forest_is_cached(model_string: str, cache_dir: str | Path | None = None) -> bool:
    """Whether :func:`compile_forest` would load this model from the cache (milliseconds) rather than compile."""
    return _forest_cache_file(model_string, cache_dir).exists()


def shap_is_cached(model_string: str, cache_dir: str | Path | None = None) -> bool:
    """Whether :func:`compile_shap` would load this model's SHAP code from the cache rather than compile."""
    return _shap_cache_file(model_string, cache_dir).exists()


def _shap_cache_file(model_string: str, cache_dir: str | Path | None) -> Path:
    return _cache_file("shap-2", ".shap.o", model_string, cache_dir)


def _forest_cache_file(model_string: str, cache_dir: str | Path | None) -> Path:
    return _cache_file("ordered-1", ".o", model_string, cache_dir)


def _cache_file(kind: str, suffix: str, model_string: str, cache_dir: str | Path | None) -> Path:
    """The cache file of one kind of compiled code: keyed by the kind's version, lleaves/llvmlite, the CPU
    and the model text.
    """
    from importlib.metadata import version

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = hashlib.sha256(
        "\n".join([kind, version("lleaves"), version("llvmlite"), _host_key(), model_string]).encode()
    ).hexdigest()[:32]
    return cache_dir / f"{key}{suffix}"


def compile_forest(model_string: str, cache_dir: str | Path | None = None) -> CompiledForest:
    """The booster of `model_string` (``Booster.model_to_string()``) compiled, from the cache when there.

    The cache key hashes the model text, the lleaves/llvmlite versions and the host CPU (the code is
    compiled for it), so a stale or foreign file is never loaded. Concurrent compilers of one model
    each write a temporary file and rename it: the last one wins, with the same bytes.
    """
    import lleaves

    _patch_lleaves()
    cache_file = _forest_cache_file(model_string, cache_dir)
    cache_dir = cache_file.parent
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        model_file = Path(tmp) / "model.txt"
        model_file.write_text(model_string)
        model = lleaves.Model(model_file=str(model_file))
        if cache_file.exists():
            model.compile(cache=str(cache_file))
        else:
            partial = Path(tmp) / "forest.o"
            model.compile(cache=str(partial))
            os.replace(partial, cache_file)
    return CompiledForest(model, model.num_feature(), cache_file)


# ---------------------------------------------------------------------------------------------------
# SHAP tables


def _tree_shap(tree: dict, goes_left: list[bool], phi: dict[int, float]) -> None:
    """Add one tree's TreeSHAP values for one pattern of decisions to `phi` (feature -> value).

    A port of LightGBM's ``Tree::TreeSHAP`` (src/io/tree.cpp) with the same arithmetic; the row
    enters only through `goes_left` (split_index -> the row goes to the left child).
    """

    def extend(path: list[list], depth: int, zero: float, one: float, feature: int) -> None:
        path[depth] = [feature, zero, one, 1.0 if depth == 0 else 0.0]
        for i in range(depth - 1, -1, -1):
            path[i + 1][3] += one * path[i][3] * (i + 1) / float(depth + 1)
            path[i][3] = zero * path[i][3] * (depth - i) / float(depth + 1)

    def unwind(path: list[list], depth: int, index: int) -> None:
        one, zero = path[index][2], path[index][1]
        next_one = path[depth][3]
        for i in range(depth - 1, -1, -1):
            if one != 0:
                tmp = path[i][3]
                path[i][3] = next_one * (depth + 1) / float((i + 1) * one)
                next_one = tmp - path[i][3] * zero * (depth - i) / float(depth + 1)
            else:
                path[i][3] = (path[i][3] * (depth + 1)) / float(zero * (depth - i))
        for i in range(index, depth):
            path[i][0], path[i][1], path[i][2] = path[i + 1][0], path[i + 1][1], path[i + 1][2]

    def unwound_sum(path: list[list], depth: int, index: int) -> float:
        one, zero = path[index][2], path[index][1]
        next_one = path[depth][3]
        total = 0.0
        for i in range(depth - 1, -1, -1):
            if one != 0:
                tmp = next_one * (depth + 1) / float((i + 1) * one)
                total += tmp
                next_one = path[i][3] - tmp * zero * ((depth - i) / float(depth + 1))
            else:
                total += (path[i][3] / zero) / ((depth - i) / float(depth + 1))
        return total

    def count(item: dict) -> float:
        return float(item["internal_count"] if "split_index" in item else item["leaf_count"])

    def recurse(item: dict, parent: list[list], depth: int, zero: float, one: float, feature: int) -> None:
        path = [list(element) for element in parent[:depth]] + [None]
        extend(path, depth, zero, one, feature)
        if "split_index" not in item:
            for i in range(1, depth + 1):
                w = unwound_sum(path, depth, i)
                el = path[i]
                phi[el[0]] = phi.get(el[0], 0.0) + w * (el[2] - el[1]) * float(item["leaf_value"])
            return
        split = int(item["split_feature"])
        left, right = item["left_child"], item["right_child"]
        hot, cold = (left, right) if goes_left[item["split_index"]] else (right, left)
        w = count(item)
        hot_zero, cold_zero = count(hot) / w, count(cold) / w
        incoming_zero = incoming_one = 1.0
        index = next((i for i in range(depth + 1) if path[i][0] == split), depth + 1)
        if index != depth + 1:
            incoming_zero, incoming_one = path[index][1], path[index][2]
            unwind(path, depth, index)
            depth -= 1
        recurse(hot, path, depth + 1, hot_zero * incoming_zero, incoming_one, split)
        recurse(cold, path, depth + 1, cold_zero * incoming_zero, 0.0, split)

    if "split_index" in tree:
        recurse(tree, [], 0, 1.0, 1.0, -1)


def _expected_value(tree: dict) -> float:
    """LightGBM's ``Tree::ExpectedValue``: the leaves' values weighted by their training counts."""
    if "split_index" not in tree:
        return float(tree["leaf_value"])
    total = float(tree["internal_count"])
    out = 0.0
    stack = [tree]
    leaves = []
    while stack:
        item = stack.pop()
        if "split_index" in item:
            stack += [item["left_child"], item["right_child"]]
        else:
            leaves.append(item)
    for leaf in sorted(leaves, key=lambda leaf: leaf["leaf_index"]):
        out += (float(leaf["leaf_count"]) / total) * float(leaf["leaf_value"])
    return out


def _internal_nodes(tree: dict) -> list[dict]:
    out, stack = [], [tree]
    while stack:
        item = stack.pop()
        if "split_index" in item:
            out.append(item)
            stack += [item["left_child"], item["right_child"]]
    return sorted(out, key=lambda item: item["split_index"])


def _tree_table(tree: dict) -> tuple[list[int], np.ndarray] | None:
    """(features the tree splits on, table[pattern, j] = TreeSHAP value of features[j]); None: a single leaf.

    Bit k of a pattern is 1 when the row goes left at split_index k.
    """
    internal = _internal_nodes(tree)
    if not internal:
        return None
    features = sorted({int(node["split_feature"]) for node in internal})
    table = np.zeros((2 ** len(internal), len(features)))
    for pattern in range(len(table)):
        phi: dict[int, float] = {}
        _tree_shap(tree, [bool(pattern >> k & 1) for k in range(len(internal))], phi)
        table[pattern] = [phi.get(f, 0.0) for f in features]
    return features, table


def shap_table_nodes(booster: Any) -> int | None:
    """Decision nodes the compiled SHAP forest of `booster` would have at most; None: not possible
    (multi-output, a tree over MAX_TABLE_NODES internal nodes, or over MAX_SHAP_NODES in all).
    """
    dump = booster.dump_model()
    if dump.get("num_tree_per_iteration", 1) != 1:
        return None
    total = 0
    for info in dump["tree_info"]:
        internal = info["num_leaves"] - 1
        if internal > MAX_TABLE_NODES:
            return None
        if internal:
            features = {int(n["split_feature"]) for n in _internal_nodes(info["tree_structure"])}
            total += len(features) * (2**internal - 1)
    return total if total <= MAX_SHAP_NODES else None


@dataclass
class CompiledShap:
    """LightGBM's ``pred_contrib`` for a booster, compiled (see the module docstring); ~1e-15 from LightGBM."""

    engine: Any  # llvmlite execution engine: keeps the code alive
    entry: Any  # ctypes function (data, out, start, end)
    n_features: int
    expected_value: float
    cache_file: Path

    def contributions(self, matrix: np.ndarray, n_jobs: int = 1) -> np.ndarray:
        """(rows, n_features + 1): SHAP value of every feature, then the expected value (``pred_contrib``'s layout)."""
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(f"matrix has shape {matrix.shape}; the model takes {self.n_features} columns")
        matrix = _as_lightgbm_reads(matrix)
        n = len(matrix)
        phi = np.zeros((n, self.n_features))
        if n:
            _run(self.entry, matrix, phi, n_jobs)
        return np.concatenate([phi, np.full((n, 1), self.expected_value)], axis=1)


def compile_shap(model_string: str, cache_dir: str | Path | None = None) -> CompiledShap:
    """TreeSHAP of the booster of `model_string` compiled to native code, from the cache when there.

    Every tree becomes, for each feature it splits on, a complete decision tree over its internal
    nodes (same splits, same missing-value rules, via lleaves' code generator) whose leaves hold that
    feature's TreeSHAP value for the decision pattern that leads there; the forest sums them per
    feature (one output per feature). Raises ValueError when :func:`shap_table_nodes` says no.
    """
    import lightgbm as lgb

    _patch_lleaves()
    booster = lgb.Booster(model_str=model_string)
    if shap_table_nodes(booster) is None:
        raise ValueError(
            f"this model has a tree over {MAX_TABLE_NODES} internal nodes, over {MAX_SHAP_NODES:,} table nodes "
            "in all, or several outputs: use LightGBM's pred_contrib for its SHAP values"
        )
    dump = booster.dump_model()
    n_features = int(dump["max_feature_idx"]) + 1
    expected = sum(_expected_value(info["tree_structure"]) for info in dump["tree_info"])
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache_file = _shap_cache_file(model_string, cache_dir)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        if cache_file.exists():
            engine = _engine(None, cache_file)
        else:
            model_file = Path(tmp) / "model.txt"
            model_file.write_text(model_string)
            partial = Path(tmp) / "shap.o"
            engine = _engine(_shap_module(model_file, dump, n_features), partial)
            os.replace(partial, cache_file)
    from lleaves.lleaves import get_entry_func_type

    entry = get_entry_func_type(True)(engine.get_function_address("forest_root"))
    return CompiledShap(engine, entry, n_features, expected, cache_file)


def _engine(module: Any, cache_file: Path) -> Any:
    import llvmlite.binding as llvm
    from lleaves.llvm_binding import compile_module_to_asm

    return compile_module_to_asm(module if module is not None else llvm.parse_assembly(""), str(cache_file))


def _pattern_tree(
    ordered: list, values: np.ndarray, level: int, pattern: int, ids: Any, decision: Any, leaf: Any
) -> Any:
    """The complete decision tree over `ordered` nodes (level k: the original node k, left = bit k set)
    whose leaf for a pattern holds values[pattern]; a node whose two sides end in the same value is left out.
    """
    if level == len(ordered):
        return leaf(next(ids), float(values[pattern]))
    left = _pattern_tree(ordered, values, level + 1, pattern | (1 << level), ids, decision, leaf)
    right = _pattern_tree(ordered, values, level + 1, pattern, ids, decision, leaf)
    if left.is_leaf and right.is_leaf and left.value == right.value:
        return left  # this decision does not change the value: no node
    source = ordered[level]
    node = decision(next(ids), source.split_feature, source.threshold, source.decision_type, -1, -1)
    if source.decision_type.is_categorical:
        node.cat_threshold = source.cat_threshold
    node.add_children(left, right)
    return node


def _shap_module(model_file: Path, dump: dict, n_features: int) -> Any:
    """The optimized LLVM module of the SHAP forest (lleaves' AST and code generator)."""
    import llvmlite.binding as llvm
    import llvmlite.ir
    from lleaves.compiler.ast import parse_to_ast
    from lleaves.compiler.ast.nodes import DecisionNode, Forest, LeafNode, Tree
    from lleaves.compiler.codegen import gen_forest

    forest = parse_to_ast(str(model_file))
    if len(forest.trees) != len(dump["tree_info"]):
        raise ValueError("lleaves and LightGBM see a different number of trees")
    trees: list[Tree] = []
    for tree, info in zip(forest.trees, dump["tree_info"], strict=True):
        made = _tree_table(info["tree_structure"])
        if made is None:
            continue
        features, table = made
        nodes: dict[int, DecisionNode] = {}
        stack = [tree.root_node]
        while stack:
            node = stack.pop()
            if not node.is_leaf:
                nodes[node.idx] = node
                stack += [node.left, node.right]
        ordered = [nodes[k] for k in range(len(nodes))]
        for j, feature in enumerate(features):
            root = _pattern_tree(ordered, table[:, j], 0, 0, iter(range(10**9)), DecisionNode, LeafNode)
            trees.append(Tree(len(trees), root, forest.features, feature))
    shap_forest = Forest(trees, forest.features, n_features, "regression", None, raw_score=True)
    ir_module = llvmlite.ir.Module(name="shap_forest")
    gen_forest(shap_forest, ir_module, 34, "forest_root", True)
    ir_module.triple = llvm.get_process_triple()
    module = llvm.parse_assembly(str(ir_module))
    module.verify()
    builder = llvm.PassManagerBuilder()
    builder.opt_level = 3
    builder.inlining_threshold = 1
    passes = llvm.ModulePassManager()
    builder.populate(passes)
    passes.run(module)
    return module
