"""Data feeding: batches of uint8 RGB crops on the training device, in an
order fixed by (seed, stage, epoch) so a resumed run repeats it exactly;
and turning a batch into the network's input and targets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from hsvcolorizer import color
from hsvcolorizer.data import (
    CacheArray,
    FolderDataset,
    balanced_indices,
    crop_flip_batch,
    filter_grayscale,
    find_images,
    is_cache,
    resized_crop_batch,
    source_of,
    split_train_val,
)
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.training.recipe import TrainConfig
from hsvcolorizer.training.runfolder import count


class BatchSource:
    """Yields Bx3xSxS uint8 RGB batches on the training device, in an order
    fixed by (seed, stage, epoch) so a resumed run repeats it exactly."""

    def __init__(self, cfg: TrainConfig, rank: int, world: int, device: torch.device, log):
        self.cfg, self.rank, self.world, self.device = cfg, rank, world, device
        data = Path(cfg.data)
        self.cache = None
        if is_cache(data):
            self.cache = CacheArray(data)
            if self.cache.meta["size"] < cfg.size:
                raise ColorizerError(f"the cache in {data} holds {self.cache.meta['size']} px images, smaller than --size {cfg.size}")
            self.counts = {
                "images_used": len(self.cache),
                "excluded_gray": int(self.cache.meta.get("excluded_gray", 0)),
                "unreadable": int(self.cache.meta.get("unreadable", 0)),
            }
            # The whole cache goes where training happens: on a GPU the crops
            # and flips then cost nothing and no JPEG is ever decoded.
            arr = np.asarray(self.cache.images)
            self.images = torch.from_numpy(arr).to(device) if device.type == "cuda" else torch.from_numpy(np.array(arr))
            self.sizes = self.cache.sizes
            self.sources = self.cache.sources
            self.n = len(self.cache)
            val_src = Path(cfg.val) if cfg.val else None
            self.val_files = _val_files(val_src) if val_src else []
            self.val_cache = CacheArray(val_src) if val_src and is_cache(val_src) else None
        else:
            files = find_images(data, "train")
            val_cache = None
            if cfg.val and is_cache(Path(cfg.val)):
                val_files, val_cache = [], CacheArray(Path(cfg.val))  # a prepared cache validates too
            elif cfg.val:
                val_files = _val_files(Path(cfg.val))
            else:
                files, val_files = split_train_val(files, data)
            kept = filter_grayscale(files)
            self.counts = {
                "images_used": len(kept.files),
                "excluded_gray": len(kept.excluded_gray),
                "unreadable": len(kept.unreadable),
            }
            if not kept.files:
                # Count the photos held out of the folder too: they are the user's files.
                held = filter_grayscale(val_files) if not cfg.val else None
                n_files = len(files) + (len(val_files) if held else 0)
                n_gray = len(kept.excluded_gray) + (len(held.excluded_gray) if held else 0)
                n_bad = len(kept.unreadable) + (len(held.unreadable) if held else 0)
                raise ColorizerError(
                    f"no colour photos to train on in {data}: {n_files} files, {n_gray} grayscale, {n_bad} unreadable"
                )
            self.dataset = FolderDataset(kept.files, cfg.size, train=True, seed=cfg.seed, crop=cfg.crop)
            self.sources = [source_of(f, data) for f in kept.files]
            self.n = len(kept.files)
            self.val_files = val_files
            self.val_cache = val_cache
        log(f"training on {count(self.counts['images_used'], 'colour photo')}; excluded "
            f"{self.counts['excluded_gray']} grayscale and {self.counts['unreadable']} unreadable")
        n_sources = len(set(self.sources))
        if cfg.sampling == "source" and n_sources > 1:
            log(f"sampling {n_sources} sources evenly")
        per_rank = self.n // world
        if per_rank < 1:
            raise ColorizerError(f"{self.n} training photos are too few for {world} processes")
        self.batch = min(cfg.batch_size, per_rank)
        self.steps_per_epoch = per_rank // self.batch
        workers = cfg.workers if cfg.workers is not None else min(4, os.cpu_count() or 1)
        self.workers = 0 if self.cache is not None else workers

    def _order(self, stage: int, epoch: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.cfg.seed * 1000003 + stage * 1009 + epoch)
        if self.cfg.sampling == "source":
            # An "epoch" is still as many draws as there are photos.
            perm = balanced_indices(self.sources, self.n, g)
        else:
            perm = torch.randperm(self.n, generator=g).tolist()
        mine = perm[self.rank :: self.world][: self.steps_per_epoch * self.batch]
        return [mine[i : i + self.batch] for i in range(0, len(mine), self.batch)]

    def batches(self, stage: int, epoch: int, start_step: int):
        order = self._order(stage, epoch)[start_step:]
        if self.cache is not None:
            for k, idx in enumerate(order, start=start_step):
                g = torch.Generator().manual_seed(self.cfg.seed * 7919 + stage * 104729 + epoch * 1000 + k * 17 + self.rank)
                if self.cfg.crop == "resized":
                    b = resized_crop_batch(self.images, self.sizes, torch.tensor(idx), self.cfg.size, g, True)
                else:
                    b = crop_flip_batch(self.images, torch.tensor(idx), self.cfg.size, g, True, self.sizes)
                yield b.to(self.device, non_blocking=True)
        else:
            self.dataset.set_epoch(epoch * 10 + stage)
            loader = torch.utils.data.DataLoader(
                self.dataset, batch_sampler=order, num_workers=self.workers, pin_memory=self.device.type == "cuda"
            )
            for b in loader:
                yield b.to(self.device, non_blocking=True)

    def validation_batch(self, max_images: int) -> torch.Tensor | None:
        """Up to max_images centre crops of validation photos, Bx3xSxS uint8 (CPU)."""
        size = self.cfg.size
        if self.val_cache is not None:
            arr = torch.from_numpy(np.array(self.val_cache.images[:max_images]))
            return resized_crop_batch(arr, self.val_cache.sizes, torch.arange(arr.shape[0]), size, torch.Generator(), False)
        if not self.val_files:
            return None
        from hsvcolorizer.data import load_square

        kept = filter_grayscale(self.val_files[: max_images * 2]).files[:max_images]
        if not kept:
            return None
        return torch.stack([torch.from_numpy(load_square(f, size)).permute(2, 0, 1) for f in kept])


def _val_files(path: Path) -> list[Path]:
    if is_cache(path):
        return []
    return find_images(path, "val")


def prepare_batch(rgb_u8: torch.Tensor, input_channel: str, circular: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bx3xSxS uint8 RGB -> (network input Bx1xSxS, true hs Bx2xSxS, true hs at 1/4), all in [-1, 1]."""
    rgb = rgb_u8.float() / 255.0
    hsv = color.rgb_to_hsv(rgb)
    gray = color.rgb_to_luma(rgb) * 2 - 1 if input_channel == "luma" else hsv[:, 2:3]
    hs = hsv[:, :2]
    low = color.resize_hs(hs, (hs.shape[-2] // 4, hs.shape[-1] // 4), circular)
    return gray, hs, low
