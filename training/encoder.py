"""Turn images into packed binary codes with a trained checkpoint (Algorithm 2).

``Encoder.load(checkpoint).encode(images, source="pan" | "ms")`` runs the
source's network over the images in batches (inference mode, with a progress
bar), takes ``sign(F)`` with F >= 0 -> bit 1 and packs through
:func:`hashsearch.pack` (bit k -> bit k % 8 of byte k // 8): uint8 (n, l / 8),
ready for :class:`hashsearch.BinaryIndex`. Given a :class:`hashsearch.CodeStore`,
it appends the codes to the store and records the encoder's provenance there.

Images must be given as the training dataset yielded them (same pixel units):
the network applies the input standardisation stored in the checkpoint. When the
training dataset had normalised raw pixels itself, ``info["pixel_stats"]`` holds
its per-band statistics (``{"pan": {"mean", "std"}, "ms": ...}``, raw pixel units),
which :class:`hashsearch.Retriever` applies to queries in pixel units.

Encoding runs in float32 by default (``precision="fp32"``), so codes do not depend
on the machine; ``precision="bf16"`` (or "auto") autocasts the forward passes
(:mod:`hashsearch.training.precision`): features move by about 2 % of their mean
magnitude (at most ~10 % measured), so only bits whose feature is near 0 can flip.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from hashsearch._validate import check_int
from hashsearch._version import __version__

from .checkpoint import load_checkpoint
from .config import TrainConfig
from .models import DHCNN, MulDHCNN, PanDHCNN
from .precision import autocast, resolve_precision
from .trainer import resolve_device

__all__ = ["Encoder", "Source", "source_key"]

logger = logging.getLogger("hashsearch")

Source = Literal["pan", "ms"]
_CPU_CHUNK = 32
_ALIASES = {"pan": "pan", "ms": "ms", "mul": "ms", "mss": "ms"}


def source_key(source: str) -> str:
    """"pan" or "ms" for a source name ("mul" and "mss" mean "ms"; any case).

    Raises:
        ValueError: any other name.
    """
    key = _ALIASES.get(str(source).lower())
    if key is None:
        raise ValueError(f"source must be 'pan' or 'ms', got {source!r}")
    return key


class Encoder:
    """The two trained networks of a checkpoint, ready to hash images.

    Args:
        pan_net: PAN network (a :class:`~hashsearch.training.models.DHCNN`).
        ms_net: MS network.
        info: provenance recorded with the codes (model, checkpoint sha256, ...).
        device: where the networks run ("cpu", "cuda", "auto").
        precision: arithmetic of the forward passes: "fp32" (default: machine-independent
            codes), "bf16" or "auto" (see :mod:`hashsearch.training.precision`).

    Use :meth:`load` to build one from a checkpoint.
    """

    def __init__(self, pan_net: DHCNN, ms_net: DHCNN, *, info: dict[str, Any] | None = None,
                 device: str | torch.device = "cpu", precision: str = "fp32") -> None:
        if pan_net.bits != ms_net.bits:
            raise ValueError(f"the networks disagree on the code length: {pan_net.bits} vs {ms_net.bits}")
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.nets = {"pan": pan_net.to(self.device).eval(), "ms": ms_net.to(self.device).eval()}
        self.bits = pan_net.bits
        self.info = dict(info or {})
        self.precision = resolve_precision(precision, self.device)

    @classmethod
    def load(cls, checkpoint: str | os.PathLike[str], *, device: str = "cpu", precision: str = "fp32") -> Encoder:
        """Build an encoder from a training checkpoint (file, or directory with ``last.pt``).

        Raises:
            FileNotFoundError, ValueError: see :func:`~hashsearch.training.checkpoint.load_checkpoint`;
                also ValueError when the networks rebuilt from the recorded geometry do not have
                the recorded layers.
        """
        state = load_checkpoint(checkpoint, map_location="cpu")
        nets: dict[str, DHCNN] = {}
        for key, cls_ in (("pan", PanDHCNN), ("ms", MulDHCNN)):
            meta = state["networks"][key]
            net = cls_(int(meta["bits"]), int(meta["bands"]), int(meta["patch_size"]), padding=str(meta["padding"]))
            recorded = meta.get("dropped_pools")  # absent in checkpoints written before it was recorded
            if recorded is not None and tuple(recorded) != net.dropped_pools:
                raise ValueError(f"{state['path']}: the checkpoint's {net.name} leaves out the pooling of stages "
                                 f"{list(recorded)}, this hashsearch builds it without {list(net.dropped_pools)}")
            net.load_state_dict(meta["state_dict"])
            nets[key] = net
        config = state["config"]
        info = {
            "model": "SIDHCNN" if state.get("method", "sidhcnn") == "sidhcnn" else str(state["method"]).upper(),
            "method": state.get("method", "sidhcnn"),
            "checkpoint": Path(state["path"]).name,
            "checkpoint_sha256": state["sha256"],
            "epoch": int(state["epoch"]),
            "bits": int(nets["pan"].bits),
            "weights": {name: config.get(name) for name in TrainConfig.weight_fields()},
            "trained_with": state.get("library_version"),
            "library_version": __version__,
            "bit_order": "little",
            "networks": {k: {"name": n.name, "bands": n.in_bands, "patch_size": n.patch_size} for k, n in nets.items()},
        }
        if state.get("pixel_stats"):  # the training data's normalisation from pixel units (hashsearch.Retriever)
            info["pixel_stats"] = state["pixel_stats"]
        return cls(nets["pan"], nets["ms"], info=info, device=device, precision=precision)

    @classmethod
    def from_networks(cls, pan_net: DHCNN, ms_net: DHCNN, *, device: str = "cpu", model: str = "SIDHCNN",
                      precision: str = "fp32") -> Encoder:
        """An encoder over in-memory networks (e.g. ``TrainResult.pan_net``), without a checkpoint."""
        info = {"model": model, "checkpoint": None, "checkpoint_sha256": None, "bits": pan_net.bits,
                "library_version": __version__, "bit_order": "little"}
        return cls(pan_net, ms_net, info=info, device=device, precision=precision)

    def network(self, source: str) -> DHCNN:
        """The network of ``source`` ("pan" or "ms")."""
        return self.nets[source_key(source)]

    def provenance(self, source: str) -> dict[str, Any]:
        """What the encoder records in a code store for codes of ``source``."""
        key = source_key(source)
        return {**self.info, "source": key, "network": self.nets[key].name}

    # ------------------------------------------------------------ batching
    def _batches(self, images: Any, key: str, batch_size: int) -> Iterator[Tensor]:
        net = self.nets[key]
        if isinstance(images, torch.utils.data.Dataset) and not isinstance(images, torch.utils.data.TensorDataset):
            n = len(images)  # type: ignore[arg-type]
            for s in range(0, n, batch_size):
                items = [images[i] for i in range(s, min(n, s + batch_size))]
                yield torch.stack([_image_tensor(it[key] if isinstance(it, dict) else it) for it in items])
            return
        x = images if isinstance(images, Tensor) else np.asarray(images)  # numpy stays lazy (mmap-friendly)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != net.input_shape:
            raise ValueError(f"{net.name} expects images of shape (n, {', '.join(map(str, net.input_shape))}), "
                             f"got {tuple(x.shape)}")
        for s in range(0, x.shape[0], batch_size):
            block = x[s : s + batch_size]
            yield block if isinstance(block, Tensor) else torch.from_numpy(np.array(block))

    def _num_images(self, images: Any) -> int:
        if isinstance(images, (Tensor, np.ndarray)):
            return 1 if images.ndim == 3 else int(images.shape[0])
        return len(images)

    @torch.inference_mode()
    def features(
        self, images: Any, source: str = "pan", *, batch_size: int = 256, progress: bool = False
    ) -> np.ndarray:
        """Real-valued features F of the images.

        Args:
            images: (n, C, H, W) or (C, H, W) array / tensor (any real dtype), or a
                map-style dataset whose items are dicts with a ``source`` image.
            source: "pan" or "ms" ("mul" is accepted).
            batch_size: images per forward pass.
            progress: show a tqdm progress bar.

        Returns:
            float32 (n, l).
        """
        from tqdm.auto import tqdm

        key = source_key(source)
        check_int(batch_size, "batch_size")
        net = self.nets[key]
        channels_last = self.device.type == "cpu"
        if channels_last:
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs lack memory_format
        n = self._num_images(images)
        out = np.empty((n, self.bits), dtype=np.float32)
        done = 0
        with tqdm(total=n, desc=f"encode {key}", unit="img", disable=not progress, leave=False) as bar:
            for batch in self._batches(images, key, batch_size):
                x = batch.to(self.device, dtype=torch.float32, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                # On CPU, forward at most _CPU_CHUNK images at a time: larger activations are
                # mmapped and page-faulted afresh on every call (measured 930 vs 1430 PAN images/s).
                step = _CPU_CHUNK if self.device.type == "cpu" else x.shape[0]
                with autocast(self.device, self.precision):
                    f = torch.cat([net(x[s : s + step]) for s in range(0, x.shape[0], step)])
                feats = f.float().cpu().numpy()
                out[done : done + feats.shape[0]] = feats
                done += feats.shape[0]
                bar.update(feats.shape[0])
        return out[:done]

    def encode(
        self,
        images: Any,
        source: str = "pan",
        *,
        batch_size: int = 256,
        device: str | None = None,
        store: Any = None,
        ids: Any = None,
        labels: Any = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Packed binary codes of the images: ``hashsearch.pack(F, encoding="sign")``.

        Args:
            images: see :meth:`features`.
            source: "pan" or "ms".
            batch_size: images per forward pass.
            device: run on this device for this call (default: the encoder's).
            store: a :class:`hashsearch.CodeStore` open for appending; the codes (with
                ``ids`` / ``labels`` when given, and the source when the store keeps
                one) are appended and the encoder provenance is recorded.
            ids: int64 (n,) ids for the store (default: the store's next positions).
            labels: int (n,) labels for the store (stores created ``with_labels``).
            progress: show a tqdm progress bar.

        Returns:
            uint8 (n, l / 8): bit k of a code is bit k % 8 of byte k // 8; F >= 0 -> 1.
        """
        from hashsearch.packing import pack

        if device is not None:
            dev = resolve_device(device)
            if dev != self.device:
                self.device = dev
                for key in self.nets:
                    self.nets[key] = self.nets[key].to(dev)
        feats = self.features(images, source, batch_size=batch_size, progress=progress)
        codes = pack(feats, encoding="sign")
        if store is not None:
            self.write_store(store, codes, source, ids=ids, labels=labels)
        return codes

    def write_store(self, store: Any, codes: np.ndarray, source: str, *, ids: Any = None, labels: Any = None) -> None:
        """Append packed codes to a CodeStore and record this encoder's provenance in it."""
        key = source_key(source)
        nbits = getattr(store, "nbits", self.bits)
        if nbits != self.bits:
            raise ValueError(f"the store holds {nbits}-bit codes, this encoder makes {self.bits}-bit codes")
        store.set_encoder_info(self.provenance(key))
        kwargs: dict[str, Any] = {}
        if ids is not None:
            kwargs["ids"] = ids
        if labels is not None:
            kwargs["labels"] = labels
        if getattr(store, "has_source", False):
            kwargs["source"] = key  # one of the store's source_names ("pan", "ms" by default)
        store.append(codes, **kwargs)
        store.flush()
        logger.info("appended %d %s codes to %s", codes.shape[0], key, getattr(store, "path", store))


def _image_tensor(image: Any) -> Tensor:
    if isinstance(image, Tensor):
        return image
    return torch.from_numpy(np.ascontiguousarray(np.asarray(image)))

