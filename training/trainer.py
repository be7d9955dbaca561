"""Algorithm 1 of the paper: alternating training of PAN-DHCNN and MUL-DHCNN.

Per epoch t = 1..T (SPEC §2)::

    B = sign(F^P + F^M)                      (F >= 0 -> +1)
    for each PAN mini-batch (a fresh random order of the V training rows):
        f = PAN-DHCNN(P_batch); F^P[batch] = f
        loss of those rows against the stored F^P, F^M and B; SGD step of the PAN net only
    for each MUL mini-batch (another random order):
        the same with MUL-DHCNN, F^M

F^P and F^M (V, l) hold the latest feature of every training sample and are
kept for the whole run (and in every checkpoint). They start as one inference
pass of the initial networks (``feature_init="forward"``) or N(0, 1) noise.

Checkpoints (``<dir>/last.pt``, written atomically at the end of every epoch and
once before the first): both networks, both optimisers, F^P, F^M, the config,
the per-band input statistics, the epoch history, the RNG states, the library
and torch versions. A run resumed from a checkpoint continues exactly as the
uninterrupted run would (same seed, same device and thread count on CPU): the
mini-batch orders are derived from (seed, epoch, source), not from a running
generator. Ctrl-C between two checkpoints leaves the last one valid.

The objective is a :class:`~hashsearch.training.objective.WeightedLoss` built from
the config (:func:`~hashsearch.training.objective.build_loss`: the method's terms,
weighted by the config's weight fields); the progress bar, the log line and
:class:`EpochStats` show whatever terms it has. B uses the sign rule of
:func:`hashsearch.pack` (:func:`hashsearch.packing.sign_codes`).

Dataset contract: a map-style dataset of length V whose item i is
``{"pan": (Cp, Hp, Wp), "ms": (Cm, Hm, Wm), "label": int, ...}`` (tensors or
arrays, any real dtype; any band counts, as the config's ``pan_bands`` /
``ms_bands`` say). The trainer addresses rows by their position i in the
dataset. If the dataset has a ``labels`` attribute (V,), it is used instead of
reading every item once to collect the labels. If its items were normalised from
pixel units by per-band statistics (a ``pixel_stats`` attribute, or ``stats`` with
``normalize`` true, as :class:`~hashsearch.training.datasets.DualSourceTorchDataset`
has), those are saved in the checkpoint as ``"pixel_stats"`` (:func:`dataset_pixel_stats`),
so a query in pixel units can be normalised the same way (:class:`hashsearch.Retriever`).

Imports :mod:`.checkpoint`, :mod:`.config`, :mod:`.models`, :mod:`.objective`,
:mod:`.precision` (bf16 autocast of the forward passes), :mod:`.prefetch` (the next
mini-batches read in a background thread while a step runs), :mod:`.run_state`
(:class:`EpochStats`, :class:`TrainResult`, the dataset readers and
:func:`resolve_device`, re-exported here) (never a
baseline: DCMH is a method of the objective) and :mod:`hashsearch` base modules.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from hashsearch._version import __version__
from hashsearch.packing import sign_codes

from .checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from .config import TrainConfig, default_threads
from .models import DHCNN, build_networks, resolve_padding
from .objective import LossTerms, WeightedLoss, build_loss
from .precision import autocast, resolve_precision
from .prefetch import prefetch
from .run_state import (
    _SOURCES,
    EpochStats,
    TrainResult,
    _derived_seed,
    _Source,
    dataset_labels,
    dataset_pixel_stats,
    dataset_task,
    resolve_device,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "EpochStats",
    "TrainResult",
    "Trainer",
    "config_differences",
    "dataset_labels",
    "dataset_pixel_stats",
    "train",
    "load_checkpoint",
    "save_checkpoint",
    "resolve_device",
]

logger = logging.getLogger("hashsearch")

#: Config fields that may differ between a checkpoint and the run resuming it.
RUNTIME_FIELDS = frozenset({"epochs", "threads", "device", "num_workers", "precision"})
#: Mini-batches read ahead in a background thread when num_workers == 0 (worker processes prefetch themselves).
PREFETCH_BATCHES = 2


def config_differences(saved: Mapping[str, Any], config: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """The fields outside :data:`RUNTIME_FIELDS` in which a checkpoint's config differs from ``config``.

    The rule for "a run of ``config`` may resume (or reuse) this checkpoint": empty result.
    Fields the checkpoint lacks take their default, except ``pair_weighting``, which
    takes "none" (checkpoints written before it existed trained on unweighted pairs).

    Args:
        saved: the checkpoint's ``"config"`` (as :meth:`TrainConfig.to_dict` wrote it).
        config: the run's config.

    Returns:
        {field: (checkpoint's value, run's value)}, in field-name order.

    Raises:
        ValueError: ``saved`` holds unknown keys or invalid values.
    """
    mine, theirs = config.to_dict(), TrainConfig.from_dict(saved).to_dict()
    if "pair_weighting" not in saved:  # written before the field existed: unweighted pairs
        theirs["pair_weighting"] = "none"
    return {k: (theirs.get(k), mine[k]) for k in sorted(mine) if k not in RUNTIME_FIELDS and mine[k] != theirs.get(k)}


class Trainer:
    """Trains SIDHCNN (or DCMH) on a dual-source dataset with Algorithm 1.

    Args:
        config: the run's :class:`TrainConfig`.
        dataset: map-style dual-source dataset of length V (see the module docstring).
        checkpoint_dir: where ``last.pt`` is written every epoch (None: no checkpoints).
        keep_checkpoints: also keep ``epoch-NNN.pt`` for every epoch.
        progress: show a tqdm progress bar (epoch, loss terms, pairs/s).

    Example:
        >>> from hashsearch.training import Trainer, TrainConfig, fake_dual_source
        >>> cfg = TrainConfig(bits=16, epochs=2).replace(pan_size=64, ms_size=16, padding="same")
        >>> result = Trainer(cfg, fake_dual_source(64, pan_size=64, ms_size=16)).fit()  # doctest: +SKIP
    """

    def __init__(
        self,
        config: TrainConfig,
        dataset: Dataset,
        *,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        keep_checkpoints: bool = False,
        progress: bool = True,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        try:
            v = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError("dataset must be a map-style dataset with __len__ and __getitem__") from None
        if v < 2:
            raise ValueError(f"the training set needs at least 2 samples, got {v}")
        if config.model.padding == "auto":  # the choice is recorded in the config (and so in checkpoints)
            config = config.replace(model=resolve_padding(config.model))
        if config.pair_weighting == "auto":  # "instance" data (pair ids) -> balanced pairs; recorded likewise
            config = config.replace(pair_weighting=config.resolve_pair_weighting(dataset_task(dataset)))
        self.config = config
        self.dataset = dataset
        self.num_samples = v
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.keep_checkpoints = keep_checkpoints
        self.progress = progress
        self.device = resolve_device(config.device)
        self.channels_last = config.channels_last if config.channels_last is not None else self.device.type == "cpu"
        self._micro_batch_setting = config.micro_batch if self.device.type == "cpu" else None
        self.precision = resolve_precision(config.precision, self.device)  # "fp32" | "bf16"

        self._check_geometry()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            pan_net, ms_net = build_networks(config.bits, config.model)
        self.pan_net = pan_net.to(self.device)
        self.ms_net = ms_net.to(self.device)
        for net in (self.pan_net, self.ms_net):
            if net.dropped_pools:
                logger.info("%s: %d×%d patches shrink to 1×1 before the pooling of stage(s) %s, which is left out",
                            net.name, net.patch_size, net.patch_size, list(net.dropped_pools))
        self.micro_batch = {id(net): self._micro_batch_for(net) for net in (self.pan_net, self.ms_net)}
        if self.channels_last:  # (the ignores: torch's stubs of Module.to lack memory_format)
            self.pan_net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self.ms_net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.opt_pan = self._optimizer(self.pan_net)
        self.opt_ms = self._optimizer(self.ms_net)
        self.loss_fn: WeightedLoss = build_loss(config)
        labels = dataset_labels(dataset)
        self.labels = torch.from_numpy(labels).to(self.device)
        self.features = {s: torch.zeros(v, config.bits, device=self.device) for s in _SOURCES}
        self.epoch = 0  # epochs completed
        self.history: list[EpochStats] = []
        self.input_stats: dict[str, dict[str, list[float] | int]] | None = None  # {source: {"mean", "std", "samples"}}
        self.pixel_stats = dataset_pixel_stats(dataset)
        self._initialized = False

    # ------------------------------------------------------------------ setup
    def _check_geometry(self) -> None:
        item = self.dataset[0]
        if not isinstance(item, dict) or "pan" not in item or "ms" not in item:
            raise TypeError("dataset items must be dicts with 'pan' and 'ms' images (and 'label')")
        m = self.config.model
        for key, bands, size in (("pan", m.pan_bands, m.pan_size), ("ms", m.ms_bands, m.ms_size)):
            shape = tuple(np.shape(item[key]))
            if shape != (bands, size, size):
                raise ValueError(
                    f"dataset {key!r} images have shape {shape}, the config expects {(bands, size, size)}; "
                    f"set {key}_bands / {key}_size in the config"
                )

    def _optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        c = self.config
        return torch.optim.SGD(net.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch`` under the config's schedule."""
        c = self.config
        if c.schedule == "constant" or c.epochs <= 1:
            return c.lr
        if c.schedule == "step":
            return c.lr * (0.1 if epoch >= (2 * c.epochs) // 3 else 1.0)
        low = c.lr * c.lr_min_factor
        return low + (c.lr - low) * 0.5 * (1 + math.cos(math.pi * epoch / (c.epochs - 1)))

    def _loader(self, key: str, order: Tensor, seed: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (positions int64 (b,), images float (b, C, H, W)) in ``order``, batch by batch."""
        size = self.config.batch_size
        batches = [order[s : s + size].tolist() for s in range(0, order.numel(), size)]
        loader = DataLoader(
            _Source(self.dataset, key),
            batch_sampler=batches,
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(seed),
            persistent_workers=False,
        )
        for pos, images in zip(batches, loader, strict=True):
            yield torch.tensor(pos, dtype=torch.int64), images

    def _to_device(self, images: Tensor) -> Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def _micro_batch_for(self, net: DHCNN) -> int | None:
        setting = self._micro_batch_setting
        if setting != "auto":
            return setting
        return max(1, (32 << 20) // net.activation_bytes())

    def _forward(self, net: DHCNN, images: Tensor) -> Tensor:
        """float32 features of a batch, in micro-batches on CPU, in the run's precision (bf16: autocast)."""
        mb = self.micro_batch[id(net)]
        with autocast(self.device, self.precision):
            if mb is None or images.shape[0] <= mb:
                out = net(images)
            else:
                out = torch.cat([net(images[s : s + mb]) for s in range(0, images.shape[0], mb)])
        return out.float()

    def _compute_input_stats(self) -> None:
        """Per-band mean / std of both sources over a seeded subset of the training set."""
        n = min(self.num_samples, self.config.stats_samples)
        gen = torch.Generator().manual_seed(_derived_seed(self.config.seed, 7))
        subset = torch.randperm(self.num_samples, generator=gen)[:n].sort().values
        stats: dict[str, dict[str, list[float] | int]] = {}
        for key, net in (("pan", self.pan_net), ("ms", self.ms_net)):
            s1 = torch.zeros(net.in_bands, dtype=torch.float64)
            s2 = torch.zeros(net.in_bands, dtype=torch.float64)
            count = 0
            for _, images in self._loader(key, subset, 0):
                x = images.double()
                s1 += x.sum(dim=(0, 2, 3))
                s2 += (x * x).sum(dim=(0, 2, 3))
                count += x.shape[0] * x.shape[2] * x.shape[3]
            mean = s1 / count
            std = torch.sqrt(torch.clamp(s2 / count - mean * mean, min=0.0))
            std = torch.where(std > 1e-12, std, torch.ones_like(std))
            net.set_input_stats(mean.float(), std.float())
            stats[key] = {"mean": mean.tolist(), "std": std.tolist(), "samples": n}
        self.input_stats = stats
        logger.info("input statistics over %d samples: %s", n, stats)

    @torch.no_grad()
    def _calibrate(self) -> None:
        """Data-dependent init of both networks on a seeded sample (see DHCNN.calibrate)."""
        n = min(self.num_samples, self.config.calibration_samples)
        gen = torch.Generator().manual_seed(_derived_seed(self.config.seed, 13))
        subset = torch.randperm(self.num_samples, generator=gen)[:n].sort().values
        for key, net in (("pan", self.pan_net), ("ms", self.ms_net)):
            images = torch.cat([self._to_device(images) for _, images in self._loader(key, subset, 0)])
            net.calibrate(images, chunk=self.micro_batch[id(net)] or 128)

    @torch.inference_mode()
    def _init_features(self) -> None:
        if self.config.feature_init == "random":
            gen = torch.Generator().manual_seed(_derived_seed(self.config.seed, 11))
            for s in _SOURCES:
                self.features[s].copy_(torch.randn(self.num_samples, self.config.bits, generator=gen))
            return
        order = torch.arange(self.num_samples)
        for key, net in (("pan", self.pan_net), ("ms", self.ms_net)):
            net.eval()
            for pos, images in self._loader(key, order, 0):
                self.features[key][pos.to(self.device)] = self._forward(net, self._to_device(images)).float()
            net.train()

    def _setup(self) -> None:
        if self._initialized:
            return
        self._compute_input_stats()
        if self.config.calibrate:
            self._calibrate()
        self._init_features()
        self._initialized = True

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume or to encode (see the module docstring)."""
        nets = {}
        for key, net in (("pan", self.pan_net), ("ms", self.ms_net)):
            nets[key] = {
                "name": net.name,
                "bands": net.in_bands,
                "patch_size": net.patch_size,
                "padding": net.padding,
                "dropped_pools": list(net.dropped_pools),
                "bits": net.bits,
                "state_dict": {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
            }
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "method": self.config.method,
            "library_version": __version__,
            "torch_version": str(torch.__version__),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "networks": nets,
            "optimizers": {"pan": self.opt_pan.state_dict(), "ms": self.opt_ms.state_dict()},
            "features": {s: self.features[s].detach().cpu().clone() for s in _SOURCES},
            "labels": self.labels.cpu().clone(),
            "input_stats": self.input_stats,
            "pixel_stats": self.pixel_stats,
            "history": [asdict(h) for h in self.history],
            "rng": rng_state(),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint of the current state atomically."""
        return save_checkpoint(self.state_dict(), path)

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint's state into this trainer (config must match: :func:`config_differences`)."""
        diff = config_differences(state["config"], self.config)
        if diff:
            raise ValueError(
                "cannot resume: the checkpoint was trained with a different config ("
                + ", ".join(f"{k}: {theirs!r} != {mine!r}" for k, (theirs, mine) in diff.items()) + ")"
            )
        if state["features"]["pan"].shape[0] != self.num_samples:
            raise ValueError(f"cannot resume: the checkpoint has {state['features']['pan'].shape[0]} training rows, "
                             f"the dataset {self.num_samples}")
        if not torch.equal(state["labels"], self.labels.cpu()):
            raise ValueError("cannot resume: the dataset's labels differ from the checkpoint's")
        for key, net in (("pan", self.pan_net), ("ms", self.ms_net)):
            net.load_state_dict(state["networks"][key]["state_dict"])
            if self.channels_last:  # (the ignore: torch's stubs of Module.to lack memory_format)
                net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.opt_pan.load_state_dict(state["optimizers"]["pan"])
        self.opt_ms.load_state_dict(state["optimizers"]["ms"])
        for s in _SOURCES:
            self.features[s].copy_(state["features"][s].to(self.device))
        self.epoch = int(state["epoch"])
        self.history = [EpochStats(**h) for h in state["history"]]
        self.input_stats = state["input_stats"]
        restore_rng(state["rng"])
        self._initialized = True

    def _checkpoint(self) -> Path | None:
        if self.checkpoint_dir is None:
            return None
        state = self.state_dict()
        path = save_checkpoint(state, self.checkpoint_dir / "last.pt")
        if self.keep_checkpoints:
            save_checkpoint(state, self.checkpoint_dir / f"epoch-{self.epoch:03d}.pt")
        logger.info("checkpoint of epoch %d written to %s", self.epoch, path)
        return path

    # ------------------------------------------------------------------ training
    def step(self, key: str, positions: Tensor, images: Tensor, codes: Tensor) -> dict[str, float]:
        """One mini-batch step of Algorithm 1 for one source.

        Computes the batch's features, writes them into the stored matrix of
        ``key``, takes the loss of those rows against the stored matrices and B,
        and steps that source's network only.

        Args:
            key: "pan" or "ms".
            positions: int64 (n,) distinct rows of the training set.
            images: float (n, C, H, W) their images (any device / memory format).
            codes: ±1 (V, l) the epoch's B, on the training device.

        Returns:
            ``{"loss": total, <term>: value, ...}`` of the step (see
            :class:`~hashsearch.training.objective.LossTerms`).
        """
        net = self.pan_net if key == "pan" else self.ms_net
        opt = self.opt_pan if key == "pan" else self.opt_ms
        own = self.features[key]
        other = self.features["ms" if key == "pan" else "pan"]
        idx = positions.to(self.device)
        feats = self._forward(net, self._to_device(images)).float()
        own[idx] = feats.detach()
        terms: LossTerms = self.loss_fn(feats, self.labels[idx], idx, own, other, self.labels, codes)
        total = float(terms.total.detach())
        if not math.isfinite(total):
            raise RuntimeError(f"the loss became {total} at epoch {self.epoch + 1} ({key} pass); "
                               "lower the learning rate or the gradient clip")
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.config.grad_clip)
        opt.step()
        return terms.as_dict()

    def _pass(self, key: str, codes: Tensor, tick: Callable[[str, dict[str, float], int], None]) -> dict[str, float]:
        gen = torch.Generator().manual_seed(_derived_seed(self.config.seed, self.epoch, _SOURCES.index(key)))
        order = torch.randperm(self.num_samples, generator=gen)
        sums: dict[str, float] = {}
        count = 0
        (self.pan_net if key == "pan" else self.ms_net).train()
        seed = _derived_seed(self.config.seed, self.epoch, 2 + _SOURCES.index(key))
        batches = self._loader(key, order, seed)
        depth = PREFETCH_BATCHES if self.config.num_workers == 0 else 0  # worker processes prefetch themselves
        with contextlib.closing(prefetch(batches, depth)) as ahead:  # an error in a step stops the reader at once
            for pos, images in ahead:
                values = self.step(key, pos, images, codes)
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v * pos.numel()
                count += pos.numel()
                tick(key, values, pos.numel())
        return {k: v / max(count, 1) for k, v in sums.items()}

    def fit(self, resume: str | os.PathLike[str] | None = None, *, raise_interrupt: bool = True) -> TrainResult:
        """Run (or continue) training up to ``config.epochs``.

        Args:
            resume: a checkpoint file or directory to continue from.
            raise_interrupt: re-raise KeyboardInterrupt after logging where the last
                valid checkpoint is (False: return a result with ``interrupted=True``).

        Returns:
            :class:`TrainResult` (networks in eval mode).
        """
        c = self.config
        threads = c.threads or default_threads()
        old_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        last: Path | None = None
        interrupted = False
        try:
            if resume is not None:
                self.load_state(load_checkpoint(resume, map_location=self.device))
                logger.info("resumed from %s at epoch %d", resume, self.epoch)
            if not self._initialized:
                self._setup()
                last = self._checkpoint()
            logger.info(
                "training %s: V=%d, l=%d, weights %s, pairs %s, %d epochs, batch %d, lr %g, device %s, %d threads, "
                "channels_last=%s, micro_batch=%s, padding=%s, precision=%s", c.method, self.num_samples, c.bits,
                " ".join(f"{n}={w:g}" for n, w in self.loss_fn.weights.items()), c.pair_weighting, c.epochs,
                c.batch_size, c.lr,
                self.device, threads, self.channels_last,
                {"pan": self.micro_batch[id(self.pan_net)], "ms": self.micro_batch[id(self.ms_net)]},
                c.model.padding, self.precision,
            )
            while self.epoch < c.epochs:
                self._run_epoch()
                last = self._checkpoint() or last
        except KeyboardInterrupt:
            interrupted = True
            where = self.checkpoint_dir / "last.pt" if self.checkpoint_dir is not None else None
            if where is not None and where.exists():
                logger.warning("interrupted during epoch %d; the last checkpoint (epoch %d) is %s",
                               self.epoch + 1, self.epoch, where)
            else:
                logger.warning("interrupted during epoch %d; no checkpoint was written", self.epoch + 1)
            if raise_interrupt:
                raise
        finally:
            torch.set_num_threads(old_threads)
            self.pan_net.eval()
            self.ms_net.eval()
        return TrainResult(self.pan_net, self.ms_net, list(self.history), last, interrupted)

    def _run_epoch(self) -> None:
        from tqdm.auto import tqdm

        c = self.config
        lr = self.lr_at(self.epoch)
        for opt in (self.opt_pan, self.opt_ms):
            for group in opt.param_groups:
                group["lr"] = lr
        codes = sign_codes(self.features["pan"] + self.features["ms"])
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(set_epoch):  # new augmentation draws per epoch, reproducible on resume
            set_epoch(self.epoch)
        n_batches = math.ceil(self.num_samples / c.batch_size)
        start = time.perf_counter()
        images_done = 0
        formats = [(n, self.loss_fn.term(n).fmt) for n in self.loss_fn.names]  # the loss's terms, in order
        bar = tqdm(total=2 * n_batches, desc=f"epoch {self.epoch + 1}/{c.epochs}", unit="batch",
                   disable=not self.progress, leave=False, dynamic_ncols=True)

        def tick(key: str, values: dict[str, float], n: int) -> None:
            nonlocal images_done
            images_done += n
            rate = images_done / 2 / max(time.perf_counter() - start, 1e-9)
            postfix = {"src": key, "loss": f"{values['loss']:.4g}"}
            postfix.update({n: format(values[n], fmt) for n, fmt in formats})
            postfix["pairs_s"] = f"{rate:.0f}"
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)

        try:
            pan_terms = self._pass("pan", codes, tick)
            ms_terms = self._pass("ms", codes, tick)
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        self.epoch += 1
        with torch.no_grad():
            fp, fm = self.features["pan"], self.features["ms"]
            b = sign_codes(fp + fm)
            stats = EpochStats(
                epoch=self.epoch,
                lr=lr,
                pan=pan_terms,
                ms=ms_terms,
                seconds=seconds,
                pairs_per_s=self.num_samples / seconds,
                bit_balance=float(b.mean(dim=0).abs().max()),
                source_agreement=float((sign_codes(fp) == sign_codes(fm)).float().mean()),
            )
        self.history.append(stats)
        logger.info(
            "epoch %d/%d: lr %.3g, PAN loss %.4g (%s), MUL loss %.4g (%s), %.1f s, %.0f pairs/s, balance %.3f, "
            "agreement %.3f", self.epoch, c.epochs, lr, pan_terms["loss"], self.loss_fn.describe(pan_terms),
            ms_terms["loss"], self.loss_fn.describe(ms_terms), seconds, stats.pairs_per_s, stats.bit_balance,
            stats.source_agreement,
        )


def train(
    config: TrainConfig,
    dataset: Dataset,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train with :class:`Trainer` in one call (see there for the arguments)."""
    return Trainer(config, dataset, checkpoint_dir=checkpoint_dir, progress=progress).fit(resume=resume)
