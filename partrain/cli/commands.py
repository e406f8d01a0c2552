"""The commands that read or list: ``eval``, ``models``, ``datasets``, ``info``,
``scale``."""

from __future__ import annotations

from pathlib import Path

from .. import log
from ..errors import PartrainError, UsageError


def cmd_eval(args):
    import numpy as np

    from ..data import open_data
    from ..engine import forward_scores
    from ..run.resume import open_spec_data, read_spec
    from ..run.rundir import RunDir

    where = args.run_dir or args.run
    if where is None:
        raise UsageError("eval needs a run directory: partrain eval RUN")
    run = RunDir(where)
    record = run.read_config()   # first: a folder that is no run is said as such
    model = run.read_params(run.read_model(args.allow_pickle), best=args.best)
    if args.data:
        data = open_data(data_file=args.data, dtype=str(model.dtype))
    else:
        spec = read_spec(run, record, "evaluate it with `partrain.load_run`, or give "
                         "--data FILE")
        data = open_spec_data(spec, dtype=str(model.dtype))
    splits = data.splits()
    if args.split not in splits:
        raise UsageError(f"{args.data or run} has no {args.split} split (it has "
                         f"{', '.join(splits)})")
    X, y = splits[args.split]
    model.check_input(X.shape[1:])
    _, loss, acc = forward_scores(model, X, y, workers=args.workers)
    if not np.isfinite(loss):
        raise PartrainError(f"{run}: the model's loss on {args.split} is {loss} (its "
                            "parameters diverged)")
    log.result(f"{model.name} on {data.name} {args.split} ({len(X)} images): "
               f"loss {loss:.4f}, accuracy {acc:.4f}" + (" (best parameters)" if args.best else ""))
    return 0


def cmd_predict(args):
    import csv
    import io

    from ..data.files import load_unlabelled
    from ..engine import forward_scores
    from ..run.files import atomic_path
    from ..run.rundir import RunDir

    run = RunDir(args.run_dir)
    class_names = (run.read_config().get("data") or {}).get("class_names")
    model = run.read_params(run.read_model(args.allow_pickle), best=args.best)
    X, names = load_unlabelled(args.inputs, dtype=str(model.dtype))
    if tuple(X.shape[1:]) != tuple(model.input_shape):
        raise UsageError(f"the inputs are {'x'.join(map(str, X.shape[1:]))} images; the model "
                         f"takes {'x'.join(map(str, model.input_shape))}")
    scores = forward_scores(model, X, workers=args.workers)[0]
    labels = model.loss.predict_labels(scores)
    probabilities = model.loss.probabilities(scores)
    classes = list(class_names or range(probabilities.shape[1]))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["input", "label", "class", *[f"p_{c}" for c in classes]])
    for name, label, p in zip(names, labels, probabilities):
        writer.writerow([name, int(label), classes[int(label)], *[f"{v:.6f}" for v in p]])
    if args.out:
        with atomic_path(args.out) as tmp:
            Path(tmp).write_text(text.getvalue())
        log.info(f"{len(names)} predictions in {args.out}")
    else:
        log.result(text.getvalue().rstrip("\n"))
    return 0


def cmd_models(args):
    from ..presets import PRESETS, build_model

    width = max(map(len, PRESETS)) + 1
    dwidth = max(len(p.dataset) for p in PRESETS.values()) + 1
    log.result(f"{'model':<{width}} {'parameters':>11}  {'input':<9} {'dataset':<{dwidth}} source")
    for name, p in PRESETS.items():
        n = build_model(name).num_params
        shape = "x".join(map(str, p.input_shape))
        log.result(f"{name:<{width}} {n:>11,}  {shape:<9} {p.dataset:<{dwidth}} {p.source}")
    return 0


def cmd_datasets(args):
    from ..data.datasets import DATASETS, default_data_dir, files_found

    rows = []
    for name, ds in DATASETS.items():
        folder = args.data_dir or default_data_dir(ds)
        if ds.folder is None:
            status, where = "embedded", "-"
        else:
            status = "found" if files_found(ds, folder) else "missing"
            where = str(folder)
        rows.append((name, status, where, ds.description))
    w0, w2 = (max(len(r[i]) for r in rows) + 1 for i in (0, 2))
    log.result(f"{'dataset':<{w0}} {'files':<9} {'looked in':<{w2}} description")
    for name, status, where, description in rows:
        log.result(f"{name:<{w0}} {status:<9} {where:<{w2}} {description}")
    return 0


def cmd_info(args):
    from ..machine import machine_info

    info = machine_info()
    log.result(f"cores: {info['physical_cores']} physical, {info['logical_cores']} logical; "
          f"memory {info['memory_gib']} GiB; {info['platform']}")
    for b in info["blas"] or [{"library": "none found"}]:
        log.result(f"BLAS: {b.get('library')} {b.get('version') or ''} "
              f"({b.get('threads')} threads, {b.get('architecture')})")
    log.result("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    return 0


def cmd_scale(args):
    import os
    import time

    from ..bench.scaling import OUTPUT_SUFFIXES, run_scaling
    from ..machine import physical_cores
    from ..presets import PRESETS

    name = args.name or f"{args.model}-{args.dtype}"
    if args.out is None:
        # Not ./results/...: run from a clone, that would replace its committed figures.
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        out = cache / "partrain" / "scale" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    else:
        out = Path(args.out)
    existing = [str(out / f"{name}{suffix}") for suffix in OUTPUT_SUFFIXES
                if (out / f"{name}{suffix}").exists()]
    if existing and not args.overwrite:
        raise UsageError(f"{existing[0]} already exists; pass `overwrite=True` to replace "
                         "it or choose another `out`")
    workers = args.workers or list(range(1, physical_cores() + 1))
    result = run_scaling(args.model, args.dataset or PRESETS[args.model].dataset, args.data_dir,
                         workers=workers, batch_sizes=args.batch_sizes, dtype=args.dtype,
                         chunk_size=args.chunk_size, rounds=args.rounds, steps=args.steps,
                         baselines=not args.no_baselines, name=name, out=out, log=log.info)
    log.result((out / f"{result['name']}.md").read_text())
    log.info(f"outputs in {out}")
    return 0
