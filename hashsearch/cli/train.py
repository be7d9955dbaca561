"""``hashsearch train`` (SIDHCNN, ablations, sweeps, baselines) and ``hashsearch encode``.

torch and :mod:`hashsearch.training` are imported inside the commands only, so
``hashsearch --help`` and every search command work without the ``train`` extra.

What a run reports follows the dataset's ``task``
(:mod:`hashsearch.training.experiments`): class data (DSRSID, labelled tiles) MAP
PAN->MS and MS->PAN (``map_pan2ms``, ``map_ms2pan``); instance data (tiled scenes
without labels, ``--fake-task instance``) recall@1, recall@10 and MRR in both
directions (``recall@1_pan2ms``, ..., ``mrr_ms2pan``) and the gallery size, never a MAP.

Examples::

    hashsearch train --fake --epochs 2 --bits 16 --out runs/demo
    hashsearch train --fake --fake-pan-size 32 --fake-ms-size 8 --fake-ms-bands 8 --out runs/small
    hashsearch train --fake --fake-task instance --out runs/pairs      # reports recall@1/@10, MRR
    hashsearch train --data dsrsid.zarr --config sidhcnn.toml --alpha 0.1 --out runs/a01
    hashsearch train --fake --epochs 2 ablation --out runs/table4
    hashsearch train --data d.zarr sweep --param alpha --values 0,0.1,1,10
    hashsearch train --data d.zarr baseline scm --bits 32
    hashsearch encode runs/demo/last.pt --source ms --fake 100 --out codes.npy
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from hashsearch.cli._common import cli_errors, emit

__all__ = ["TORCH_HINT", "register"]

logger = logging.getLogger("hashsearch")

TORCH_HINT = (
    "this command needs PyTorch, which is not installed: pip install 'hashsearch[train]' "
    "(CPU-only machines: pip install torch==2.13.0)"
)


def _require_torch() -> None:
    """Raise a RuntimeError with the install hint when torch is missing."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(TORCH_HINT) from exc


@dataclass
class _Common:
    """Options given to ``hashsearch train`` before a subcommand."""

    config: Path | None = None
    preset: str | None = None
    data: Path | None = None
    fake: bool = False
    fake_samples: int = 512
    fake_pan_size: int = 256
    fake_ms_size: int = 64
    fake_classes: int = 8
    fake_ms_bands: int = 4
    fake_task: str = "class"
    out: Path = Path("runs/sidhcnn")
    overrides: dict[str, Any] = field(default_factory=dict)
    padding: str = "auto"
    progress: bool = True
    as_json: bool = False


def _weight_overrides(items: list[str]) -> dict[str, float]:
    """``--weight alpha=0.5`` options as config overrides, checked against TrainConfig's loss-weight fields."""
    from hashsearch.training.config import TrainConfig

    fields = TrainConfig.weight_fields()
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in fields:
            raise ValueError(f"--weight takes FIELD=VALUE with FIELD one of {', '.join(fields)}, got {item!r}")
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"--weight {name}= needs a number, got {value!r}") from None
    return out


def _split_values(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise ValueError("--values needs a comma-separated list, e.g. 0,0.1,1")
    return values


def _load_data(common: _Common) -> tuple[Any, Any]:
    """(train, test) datasets from --data or --fake."""
    if common.data is not None and common.fake:
        raise ValueError("give either --data or --fake, not both")
    if common.data is not None:
        from hashsearch.training.datasets import dual_source_splits

        return dual_source_splits(common.data)
    if common.fake:
        from hashsearch.training.experiments import split_dataset
        from hashsearch.training.fake import fake_dual_source

        data = fake_dual_source(common.fake_samples, num_classes=common.fake_classes,
                                pan_size=common.fake_pan_size, ms_size=common.fake_ms_size,
                                ms_bands=common.fake_ms_bands, task=common.fake_task)
        return split_dataset(data, 0.25, seed=0)
    raise ValueError("no training data: give --data <dual-source dataset> or --fake")


def _base_config(common: _Common, train_set: Any) -> Any:
    """The config from --config / --preset / overrides, with the input geometry taken from the data.

    ``--padding auto`` keeps a config file's "same", and otherwise lets
    :func:`~hashsearch.training.models.resolve_padding` choose ("valid", the paper's
    layers, when both patches fit them; "same" for smaller patches); the choice is
    written into the config.
    """
    from hashsearch.training.config import PRESETS, TrainConfig
    from hashsearch.training.models import resolve_padding

    cfg = TrainConfig.from_file(common.config) if common.config is not None else TrainConfig()
    if common.preset is not None:
        if common.preset not in PRESETS:
            raise ValueError(f"unknown preset {common.preset!r}; one of {', '.join(PRESETS)}")
        p = PRESETS[common.preset]
        cfg = cfg.replace(**p.loss_weights(), method=p.method)
    item = train_set[0]
    pan_shape, ms_shape = tuple(item["pan"].shape), tuple(item["ms"].shape)
    if pan_shape[1] != pan_shape[2] or ms_shape[1] != ms_shape[2]:
        raise ValueError(f"the networks take square patches; the data has PAN {pan_shape} and MS {ms_shape}")
    geometry = {"pan_bands": pan_shape[0], "pan_size": pan_shape[1], "ms_bands": ms_shape[0], "ms_size": ms_shape[1]}
    padding = common.padding
    if padding == "auto" and cfg.model.padding == "same":
        padding = "same"
    cfg = cfg.replace(**geometry, padding=padding, **common.overrides)
    return cfg.replace(model=resolve_padding(cfg.model))


def _result_row(res: Any) -> dict[str, Any]:
    """A CrossSourceResult as one flat row: the protocol's metrics (map_* or recall@k_* and mrr_*)."""
    return {"name": res.name, "bits": res.bits, "protocol": res.protocol,
            **{key: round(value, 4) for key, value in res.summary().items()},
            "database_size": res.database_size,
            "train_seconds": None if res.train_seconds is None else round(res.train_seconds, 1),
            "pairs_per_s": None if res.pairs_per_s is None else round(res.pairs_per_s, 1),
            "checkpoint": res.checkpoint}


def _metric_columns(protocol: str) -> list[tuple[str, str]]:
    """(row key, header) of the metric columns of a protocol's table."""
    from hashsearch.training.experiments import DIRECTION_KEYS, PROTOCOL_METRICS

    short = {"map": "MAP", "recall@1": "R@1", "recall@10": "R@10", "mrr": "MRR"}
    return [(f"{metric}_{key}", f"{short.get(metric, metric)} {direction}")
            for metric in PROTOCOL_METRICS[protocol] for direction, key in DIRECTION_KEYS.items()]


def _run_configs(common: _Common, configs: dict[str, Any], train_set: Any, test_set: Any) -> list[dict[str, Any]]:
    from hashsearch.training.experiments import run_experiments

    results = run_experiments(configs, train_set, test_set, out_dir=common.out, progress=common.progress)
    return [_result_row(r) for r in results]


def _emit_table(rows: list[dict[str, Any]], common: _Common, extra: dict[str, Any] | None = None) -> None:
    if common.as_json:
        emit({"results": rows, **(extra or {})}, True)
        return
    for key, value in (extra or {}).items():
        typer.echo(f"{key}: {value}")
    protocol = rows[0]["protocol"] if rows else "class"
    columns = _metric_columns(protocol)
    width = max(8, *(len(h) for _, h in columns))
    if rows:
        typer.echo(f"protocol: {protocol} (database of {rows[0]['database_size']} items per query)")
    typer.echo(f"{'name':<16} {'bits':>4} " + " ".join(f"{h:>{width}}" for _, h in columns)
               + f" {'train s':>8} {'pairs/s':>8}")
    for r in rows:
        typer.echo(f"{r['name']:<16} {r['bits']:>4} " + " ".join(f"{r[k]:>{width}.4f}" for k, _ in columns)
                   + f" {r['train_seconds'] if r['train_seconds'] is not None else '-':>8}"
                   f" {r['pairs_per_s'] if r['pairs_per_s'] is not None else '-':>8}")


def register(app: typer.Typer) -> None:
    """Add ``train`` (with subcommands) and ``encode`` to ``app``."""
    train_app = typer.Typer(
        help="Train SIDHCNN (Algorithm 1); subcommands run the paper's ablation, sweeps and baselines. "
        "Options before a subcommand (data, config, overrides) apply to it.",
        no_args_is_help=False,
    )
    app.add_typer(train_app, name="train")

    @train_app.callback(invoke_without_command=True)
    @cli_errors
    def train(
        ctx: typer.Context,
        config: Path | None = typer.Option(None, "--config", help="TOML or JSON file of TrainConfig fields."),
        preset: str | None = typer.Option(None, "--preset", help="irsc | iasc | bqc | fdc | full | dcmh (Table IV)."),
        data: Path | None = typer.Option(None, "--data", help="Dual-source dataset (Zarr group or DSRSID .mat)."),
        fake: bool = typer.Option(False, "--fake", help="Use seeded fake dual-source data instead of --data."),
        fake_samples: int = typer.Option(512, "--fake-samples", help="Fake pairs (train + test)."),
        fake_pan_size: int = typer.Option(256, "--fake-pan-size"),
        fake_ms_size: int = typer.Option(64, "--fake-ms-size"),
        fake_classes: int = typer.Option(8, "--fake-classes"),
        fake_ms_bands: int = typer.Option(4, "--fake-ms-bands", help="MS bands of the fake data."),
        fake_task: str = typer.Option("class", "--fake-task", help="class (labels = classes: MAP) | instance "
                                      "(labels = pair ids: recall@k, MRR)."),
        out: Path = typer.Option(Path("runs/sidhcnn"), "--out", "-o", help="Checkpoint / results folder."),
        alpha: float | None = typer.Option(None, "--alpha", help="Weight of IASC."),
        beta: float | None = typer.Option(None, "--beta", help="Weight of BQC."),
        gamma: float | None = typer.Option(None, "--gamma", help="Weight of FDC."),
        weight: list[str] | None = typer.Option(None, "--weight", help="FIELD=VALUE: any loss-weight field of "
                                                "TrainConfig (alpha, beta, gamma, and those of added terms); "
                                                "repeatable."),
        bits: int | None = typer.Option(None, "--bits", help="Code length l."),
        epochs: int | None = typer.Option(None, "--epochs"),
        lr: float | None = typer.Option(None, "--lr"),
        batch_size: int | None = typer.Option(None, "--batch-size"),
        seed: int | None = typer.Option(None, "--seed"),
        threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (default: all usable cores)."),
        device: str | None = typer.Option(None, "--device", help="cpu | cuda | cuda:N | auto."),
        padding: str = typer.Option("auto", "--padding", help="valid (the paper's, PAN >= 241 and MS >= 57 px) | "
                                    "same (any patch size) | auto (valid where both fit, else same)."),
        resume: Path | None = typer.Option(None, "--resume", help="Continue from a checkpoint (file or folder)."),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Train SIDHCNN on a dataset (or fake data), evaluate PAN->MS / MS->PAN, keep checkpoints.

        Reports MAP for class data, recall@1 / recall@10 / MRR for instance data (the dataset's task).
        """
        _require_torch()
        overrides = {k: v for k, v in {"alpha": alpha, "beta": beta, "gamma": gamma, "bits": bits, "epochs": epochs,
                                        "lr": lr, "batch_size": batch_size, "seed": seed, "threads": threads,
                                        "device": device}.items() if v is not None}
        overrides.update(_weight_overrides(weight or []))
        if padding not in ("auto", "valid", "same"):
            raise ValueError(f"--padding must be auto, valid or same, got {padding!r}")
        if fake_task not in ("class", "instance"):
            raise ValueError(f"--fake-task must be class or instance, got {fake_task!r}")
        common = _Common(config, preset, data, fake, fake_samples, fake_pan_size, fake_ms_size, fake_classes,
                         fake_ms_bands, fake_task, out, overrides, padding, progress, as_json)
        ctx.obj = common
        if ctx.invoked_subcommand is not None:
            return
        from hashsearch.training.encoder import Encoder
        from hashsearch.training.experiments import evaluate_cross_source
        from hashsearch.training.trainer import Trainer

        train_set, test_set = _load_data(common)
        cfg = _base_config(common, train_set)
        result = Trainer(cfg, train_set, checkpoint_dir=out, progress=progress).fit(resume=resume)
        device_name = str(next(result.pan_net.parameters()).device)
        res = evaluate_cross_source(Encoder.from_networks(result.pan_net, result.ms_net, device=device_name),
                                    train_set, test_set, name=cfg.method, progress=progress)
        res.checkpoint = str(result.checkpoint) if result.checkpoint else None
        last = result.history[-1] if result.history else None
        res.train_seconds = sum(h.seconds for h in result.history)
        res.pairs_per_s = last.pairs_per_s if last else None
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps({**_result_row(res), "config": cfg.to_dict()}, indent=2))
        emit({**_result_row(res), "epochs": len(result.history), "out": str(out)}, as_json)

    @train_app.command("ablation")
    @cli_errors
    def ablation(ctx: typer.Context) -> None:
        """Table IV: IRSC; +IASC; +BQC; +FDC, each trained and evaluated (results.json in --out)."""
        from hashsearch.training.config import ablation_configs

        common: _Common = ctx.obj
        train_set, test_set = _load_data(common)
        configs = ablation_configs(_base_config(common, train_set))
        _emit_table(_run_configs(common, configs, train_set, test_set), common, {"table": "IV"})

    @train_app.command("sweep")
    @cli_errors
    def sweep(
        ctx: typer.Context,
        param: str = typer.Option(..., "--param", help="alpha | beta | gamma (Tables V-VII) or any numeric "
                                  "TrainConfig field (e.g. lr)."),
        values: str | None = typer.Option(None, "--values", help="Comma-separated values (default: the paper's)."),
        paper_fixed: bool = typer.Option(True, "--paper-fixed/--keep-others",
                                         help="Hold the other two weights at the paper's values for that table."),
    ) -> None:
        """Train one model per value of a parameter and compare their MAP."""
        from hashsearch.training.config import TABLE_SWEEPS, sweep_configs

        common: _Common = ctx.obj
        train_set, test_set = _load_data(common)
        base = _base_config(common, train_set)
        if param in TABLE_SWEEPS:
            vals = None if values is None else [float(v) for v in _split_values(values)]
            swept = sweep_configs(param, vals, base, paper_fixed=paper_fixed)
            configs = {f"{param}={v:g}": c for v, c in swept.items()}
        else:
            if values is None:
                raise ValueError(f"--values is required when sweeping {param!r}")
            current = getattr(base, param, None)
            if current is None and not hasattr(base, param):
                raise ValueError(f"unknown TrainConfig field {param!r}")
            kind = type(current) if current is not None else str
            configs = {f"{param}={v}": base.replace(**{param: kind(v) if kind is not bool else v == "true"})
                       for v in _split_values(values)}
        _emit_table(_run_configs(common, configs, train_set, test_set), common, {"sweep": param})

    @train_app.command("baseline")
    @cli_errors
    def baseline(
        ctx: typer.Context,
        method: str = typer.Argument(..., help="dcmh | cca | scm"),
    ) -> None:
        """Table VIII baselines: DCMH (same networks) or CCA-ITQ / SCM-Seq on GIST descriptors."""
        common: _Common = ctx.obj
        method = method.lower()
        if method not in ("dcmh", "cca", "scm"):
            raise ValueError(f"method must be dcmh, cca or scm, got {method!r}")
        train_set, test_set = _load_data(common)
        base = _base_config(common, train_set)
        if method == "dcmh":
            from hashsearch.training.baselines.dcmh import dcmh_config

            rows = _run_configs(common, {"dcmh": dcmh_config(base)}, train_set, test_set)
        else:
            rows = [_run_gist_baseline(method, base.bits, train_set, test_set, common)]
        _emit_table(rows, common, {"baseline": method})

    app.command("encode")(encode)


def _run_gist_baseline(method: str, bits: int, train_set: Any, test_set: Any, common: _Common) -> dict[str, Any]:
    import time

    from hashsearch.training.baselines import CCAITQ, GistConfig, SCMSeq, gist_dataset
    from hashsearch.training.experiments import evaluate_codes, protocol_of
    from hashsearch.training.trainer import dataset_labels

    train_labels = dataset_labels(train_set)
    test_labels = dataset_labels(test_set)
    if method == "scm":
        SCMSeq.check_labels(train_labels)  # before the descriptors: instance data is refused at once
    start = time.perf_counter()
    cfgs = {}
    for key in ("pan", "ms"):
        size = min(128, int(train_set[0][key].shape[-1]))
        cfgs[key] = GistConfig(image_size=max(size, 8), grid=4, scales=4 if size >= 32 else 3)
    desc = {(role, key): gist_dataset(ds, key, cfgs[key], progress=common.progress)
            for role, ds in (("train", train_set), ("test", test_set)) for key in ("pan", "ms")}
    model = (CCAITQ if method == "cca" else SCMSeq)(bits)
    model.fit(desc["train", "pan"], desc["train", "ms"], train_labels)
    seconds = time.perf_counter() - start
    codes = {split: {key: model.encode(desc[split, key], key) for key in ("pan", "ms")} for split in ("train", "test")}
    protocol = protocol_of("auto", test_set, train_set)
    res = evaluate_codes(codes, train_labels, test_labels, bits, protocol=protocol, name=model.name)
    common.out.mkdir(parents=True, exist_ok=True)
    res.checkpoint = str(model.save(common.out / f"{method}.npz"))
    res.train_seconds = seconds
    return _result_row(res)


@cli_errors
def encode(
    checkpoint: Path = typer.Argument(..., help="Training checkpoint (file, or folder holding last.pt)."),
    source: str = typer.Option(..., "--source", "-s", help="pan | ms: which network, and which images of --data."),
    data: Path | None = typer.Option(None, "--data", help="Dual-source dataset to encode."),
    split: str = typer.Option("all", "--split", help="Split of --data: all | train | test."),
    images: Path | None = typer.Option(None, "--images", help=".npy array (n, C, H, W) of images."),
    fake: int | None = typer.Option(None, "--fake", help="Encode this many seeded fake images (shape from the "
                                    "checkpoint)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the packed codes to this .npy file."),
    store: Path | None = typer.Option(None, "--store", help="Append the codes to this CodeStore (created if absent)."),
    batch_size: int = typer.Option(256, "--batch-size"),
    device: str = typer.Option("cpu", "--device"),
    threads: int | None = typer.Option(None, "--threads"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Hash images with a trained checkpoint: packed uint8 codes (n, l/8), to .npy and/or a CodeStore."""
    _require_torch()
    import numpy as np
    import torch

    from hashsearch.training.encoder import Encoder, source_key

    if sum(x is not None for x in (data, images, fake)) != 1:
        raise ValueError("give exactly one of --data, --images or --fake")
    if out is None and store is None:
        raise ValueError("nowhere to write: give --out codes.npy and/or --store codes.zarr")
    if threads is not None:
        torch.set_num_threads(threads)
    enc = Encoder.load(checkpoint, device=device)
    key = source_key(source)
    labels = None
    if data is not None:
        from hashsearch.training.datasets import DualSourceTorchDataset

        inputs: Any = DualSourceTorchDataset(data, split=split)
        labels = np.asarray(inputs.labels)
    elif images is not None:
        inputs = np.load(images, mmap_mode="r")
    else:
        from hashsearch.training.fake import FakeDualSource

        assert fake is not None  # exactly one of data, images, fake was given

        pan_net, ms_net = enc.network("pan"), enc.network("ms")
        inputs = FakeDualSource(int(fake), pan_size=pan_net.patch_size, ms_size=ms_net.patch_size,
                                pan_bands=pan_net.in_bands, ms_bands=ms_net.in_bands)
        labels = inputs.labels
    code_store = None
    if store is not None:
        from hashsearch.store import CodeStore

        if (store / "zarr.json").exists():
            code_store = CodeStore.open(store, mode="a")
        else:
            code_store = CodeStore.create(store, enc.bits, with_labels=labels is not None, with_source=True)
    try:
        kwargs = {"labels": labels} if code_store is not None and code_store.has_labels else {}
        codes = enc.encode(inputs, key, batch_size=batch_size, store=code_store, progress=progress, **kwargs)
    finally:
        if code_store is not None:
            code_store.close()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, codes)
    emit({"codes": int(codes.shape[0]), "bits": enc.bits, "source": key, "out": str(out) if out else None,
          "store": str(store) if store else None, "checkpoint_sha256": enc.info.get("checkpoint_sha256")}, as_json)
