"""Image folders as datasets: formats and modes, EXIF, splits, labels, bad files, the packed
store, and training from a folder (resume, torchrun shards). Tiny folders made here."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, features
from safetensors.torch import load_file

from vqkit.cli import main as cli_main
from vqkit.data.image_files import read_image
from vqkit.data.image_folder import decode_square, hash_fraction, read_header, scan_image_folder
from vqkit.data.image_store import CACHE_NAME, FolderImages, open_split_store
from vqkit.data.loaders import is_image_folder, load_image_split, load_training_data
from vqkit.errors import DataError
from vqkit.training.train import train


def _rgb(seed: int, h: int = 32, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_folder(root: Path, n: int = 24, classes=("cat", "dog"), split_folders: bool = False,
                size=(32, 32)) -> dict[str, np.ndarray]:
    """PNGs of random pixels in class folders; returns relative path -> (H, W, 3) pixels."""
    out = {}
    for i in range(n):
        split = ("val/" if i % 4 == 0 else "train/") if split_folders else ""
        rel = f"{split}{classes[i % len(classes)]}/img{i:03d}.png"
        arr = _rgb(i, size[1], size[0])
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / rel)
        out[rel] = arr
    return out


# -- formats and modes ----------------------------------------------------------------------

FORMATS = ["PNG", "JPEG", "BMP", "TIFF"] + (["WEBP"] if features.check("webp") else [])


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_decodes_to_the_same_pixels(tmp_path, fmt):
    arr = np.zeros((32, 48, 3), np.uint8)
    arr[:, :24] = (200, 40, 10)  # left half red-ish, right half black
    path = tmp_path / f"a.{fmt.lower()}"
    Image.fromarray(arr).save(path, format=fmt, **({"quality": 95} if fmt != "PNG" else {}))
    assert read_header(path) == (48, 32, "RGB")
    x = decode_square(path, 32, 3).astype(int)  # (3, 32, 32): centre crop of columns 8..40
    assert x.shape == (3, 32, 32)
    lossy = 12 if fmt in ("JPEG", "WEBP") else 0
    assert np.abs(x[:, 4:28, 2:12] - np.array([200, 40, 10])[:, None, None]).max() <= lossy
    assert x[:, 4:28, 20:30].max() <= lossy


@pytest.mark.parametrize("mode,grey", [("L", True), ("P", False), ("RGBA", False),
                                       ("I;16", True), ("LA", True), ("CMYK", False)])
def test_modes_give_8_bit_rgb_or_grey(tmp_path, mode, grey):
    base = np.full((16, 16), 128, np.uint8)
    if mode == "I;16":
        im = Image.fromarray(np.full((16, 16), 128 * 257, np.uint16))
    elif mode == "P":
        im = Image.fromarray(np.stack([base] * 3, -1)).convert("P")
    else:
        im = Image.fromarray(base).convert(mode)
    path = tmp_path / ("a.tiff" if mode == "CMYK" else "a.png")
    im.save(path)
    assert (read_header(path)[2] in ("1", "L", "LA", "I", "I;16", "I;16B")) == grey
    for channels in (1, 3):
        x = decode_square(path, 16, channels)
        assert x.shape == (channels, 16, 16) and x.dtype == np.uint8
        assert abs(int(x.mean()) - 128) <= 2, (mode, channels, x.mean())
        # encode and reconstruct read a file as training does
        assert np.array_equal(read_image(path, channels).numpy(), x)


def test_grey_folders_train_a_one_channel_model(tmp_path, tiny_image_config):
    root = tmp_path / "grey"
    root.mkdir()
    for i in range(12):
        Image.fromarray(_rgb(i)[:, :, 0]).save(root / f"{i}.png")
    cfg = tiny_image_config("cifar10", epochs=1)
    cfg.data.root, cfg.data.val_fraction = str(root), 0.25
    train(cfg, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["in_channels"] == 1
    record = json.loads((tmp_path / "run" / "data.json").read_text())
    assert record["channels"] == 1 and record["class_names"] is None


def test_exif_rotation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:10] = 255  # top half white (landscape, 40 wide)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise: the white half goes right
    path = tmp_path / "rot.jpg"
    im.save(path, quality=95, exif=exif.tobytes())
    assert read_header(path)[:2] == (20, 40)  # as displayed: portrait
    x = decode_square(path, 20, 3).astype(int)
    assert x[:, :, 12:].mean() > 200 and x[:, :, :8].mean() < 50
    y = read_image(path, 3).numpy().astype(int)  # what encode and reconstruct see
    assert y.shape == (3, 40, 20) and y[:, :, 12:].mean() > 200 and y[:, :, :8].mean() < 50


# -- splits and labels ----------------------------------------------------------------------


@given(st.sets(st.text("abcdefgh/", min_size=1, max_size=12), min_size=1, max_size=30),
       st.sets(st.text("abcdefgh/", min_size=1, max_size=12), max_size=30),
       st.integers(0, 5))
def test_hash_split_of_a_file_does_not_change_when_files_are_added(old, new, seed):
    before = {f: hash_fraction(f, seed) < 0.3 for f in old}
    after = {f: hash_fraction(f, seed) < 0.3 for f in old | new}
    assert all(after[f] == v for f, v in before.items())


def test_hash_split_is_stable_on_disk_and_about_the_fraction(tmp_path):
    make_folder(tmp_path, n=200)
    a = scan_image_folder(tmp_path, val_fraction=0.2)
    make_folder(tmp_path / "cat" / "more", n=30, classes=("x",))  # more files (in cat/)
    b = scan_image_folder(tmp_path, val_fraction=0.2)
    assert set(a.splits["val"].files) <= set(b.splits["val"].files)
    assert set(a.splits["train"].files) <= set(b.splits["train"].files)
    assert 20 <= len(a.splits["val"].files) <= 60
    other = scan_image_folder(tmp_path, val_fraction=0.2, split_seed=1)
    assert set(other.splits["val"].files) != set(b.splits["val"].files)


def test_split_folders_and_class_labels(tmp_path):
    pixels = make_folder(tmp_path, n=16, classes=("b_dog", "a_cat"), split_folders=True)
    f = scan_image_folder(tmp_path)
    assert f.split_rule == "folders" and f.class_names == ["a_cat", "b_dog"]
    assert sorted(f.splits) == ["train", "val"] and len(f.splits["val"].files) == 4
    for s in f.splits.values():
        for rel, lab in zip(s.files, s.labels, strict=True):
            assert f.class_names[lab] == rel.split("/")[1]
    with pytest.raises(DataError, match="no split 'test'"):
        f.split("test")
    val = load_image_split(str(tmp_path), "val")
    assert isinstance(val, FolderImages) and val.class_names == ["a_cat", "b_dog"]
    # 32x32 sources are stored as they are: the batches hold exactly their pixels, in order.
    assert val.store.shape[1:] == (3, 32, 32)
    got = torch.cat(list(val.batches(3)))
    want = np.stack([pixels[rel] for rel in val.meta["files"]]).transpose(0, 3, 1, 2)
    assert torch.equal(((got + 0.5) * 255).round().to(torch.uint8), torch.from_numpy(want))


def test_cifar10_wins_over_image_files_beside_it(cifar_root):
    Image.fromarray(_rgb(0)).save(cifar_root / "stray.png")
    assert not is_image_folder(cifar_root)
    assert is_image_folder(cifar_root.parent / "nope") is False


# -- bad data -------------------------------------------------------------------------------


def test_unreadable_files_are_named_once_and_skipped(tmp_path, capsys):
    make_folder(tmp_path, n=8, classes=("c",))
    (tmp_path / "c" / "empty.png").write_bytes(b"")
    (tmp_path / "c" / "junk.jpg").write_bytes(b"not an image at all")
    good = io.BytesIO()
    Image.fromarray(_rgb(9, 64, 64)).save(good, format="PNG")
    (tmp_path / "c" / "truncated.png").write_bytes(good.getvalue()[:200])
    folder = scan_image_folder(tmp_path, val_fraction=0.0)
    store, meta = open_split_store(folder, "train", image_size=32, workers=2)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped 3 unreadable" in err
    for name in ("empty.png", "junk.jpg", "truncated.png"):
        assert f"c/{name}" in err and f"c/{name}" in meta["unreadable"]
    assert meta["n"] == 8 and len(FolderImages(store, meta, "train", image_size=32)) == 8
    open_split_store(folder, "train", image_size=32)  # reused: not named again
    assert capsys.readouterr().err == ""


def test_empty_datasets_are_one_line_errors(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"")
    folder = scan_image_folder(tmp_path, val_fraction=0.0)
    with pytest.raises(DataError, match="no readable images in split 'train'"):
        open_split_store(folder, "train", image_size=8)
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="no image files"):
        scan_image_folder(tmp_path / "b")


def test_the_store_is_reused_then_rebuilt_when_a_file_changes(tmp_path):
    make_folder(tmp_path, n=6, classes=("c",), size=(40, 36))
    folder = scan_image_folder(tmp_path, val_fraction=0.0)
    store, meta = open_split_store(folder, "train", image_size=32, workers=1)
    assert store.shape == (6, 3, 36, 36)  # a little larger than 32 for the random crop
    cache = tmp_path / CACHE_NAME
    first = sorted(p.name for p in cache.iterdir())
    mtime = (cache / first[1]).stat().st_mtime_ns
    open_split_store(folder, "train", image_size=32)
    assert (cache / first[1]).stat().st_mtime_ns == mtime  # reused, not packed again
    time.sleep(0.01)
    Image.fromarray(np.zeros((36, 40, 3), np.uint8)).save(tmp_path / "c" / "img000.png")
    store2, meta2 = open_split_store(scan_image_folder(tmp_path, val_fraction=0.0), "train",
                                     image_size=32)
    assert sorted(p.name for p in cache.iterdir()) != first and len(list(cache.iterdir())) == 2
    row = meta2["files"].index("c/img000.png")
    assert store2[row].max() == 0 and store[row].max() > 0
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp")]


def test_vqkit_data_summarises_a_folder(tmp_path, capsys):
    make_folder(tmp_path, n=10, split_folders=True, size=(40, 30))
    (tmp_path / "train" / "cat" / "bad.png").write_bytes(b"\x89PNG broken")
    assert cli_main(["data", str(tmp_path), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["splits"]["train"]["readable"] == 7 and s["splits"]["val"]["readable"] == 3
    assert s["splits"]["train"]["classes"] == {"cat": 2, "dog": 5}
    assert s["images"]["most_common_sizes"] == [[40, 30, 10]] and s["channels"] == 3
    assert s["unreadable"]["count"] == 1 and s["unreadable"]["first"][0]["path"] == \
        "train/cat/bad.png"
    assert cli_main(["data", str(tmp_path)]) == 0
    assert "train/cat/bad.png" in capsys.readouterr().out
    assert cli_main(["data", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# -- batches, training, resume, shards ------------------------------------------------------


def test_crops_flips_and_rank_shards_cover_each_image_once(tmp_path):
    make_folder(tmp_path, n=21, classes=("c",), size=(40, 36))
    folder = scan_image_folder(tmp_path, val_fraction=0.0)
    store, meta = open_split_store(folder, "train", image_size=32)
    data = FolderImages(store, meta, "train", image_size=32, train=True, hflip=True)
    full = list(data.batches(4, epoch=3, seed=1))
    assert [b.shape for b in full][:1] == [(4, 3, 32, 32)] and sum(len(b) for b in full) == 21
    assert torch.equal(torch.cat(full), torch.cat(list(data.batches(4, epoch=3, seed=1))))
    resumed = list(data.batches(4, epoch=3, seed=1, start=2))
    assert all(torch.equal(a, b) for a, b in zip(full[2:], resumed, strict=True))
    shards = [list(data.batches(4, epoch=3, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    for b, (s0, s1) in enumerate(zip(*shards, strict=True)):
        assert torch.equal(torch.cat([s0, s1]).sort(0).values, full[b].sort(0).values)
    assert not torch.equal(torch.cat(full), torch.cat(list(data.batches(4, epoch=4, seed=1))))


def test_resume_equals_uninterrupted_on_a_folder(tmp_path, tiny_image_config):
    make_folder(tmp_path / "d", n=40, size=(36, 34))
    cfg = tiny_image_config("cifar10", epochs=2)
    cfg.data.root, cfg.data.hflip, cfg.data.val_fraction = str(tmp_path / "d"), True, 0.2
    data = load_training_data(cfg)
    n_train = len(data[0])
    full = train(cfg, tmp_path / "full", progress=False, data=data)
    cfg.train.max_steps = -(-n_train // 8) + 1  # stops inside epoch 2
    train(cfg, tmp_path / "part", progress=False)
    resumed = train(None, tmp_path / "part", resume=True, overrides={"max_steps": 0},
                    progress=False)
    assert resumed.step == full.step
    a = load_file(tmp_path / "full" / "checkpoints" / "last" / "model.safetensors")
    b = load_file(tmp_path / "part" / "checkpoints" / "last" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rec = json.loads((tmp_path / "part" / "data.json").read_text())
    assert rec["class_names"] == ["cat", "dog"] and rec["splits"]["train"]["n_images"] == n_train


SHARD_SCRIPT = """
import json, os, sys
import torch
from vqkit.config import DataConfig
from vqkit.data.loaders import load_image_split
from vqkit.distributed import setup_distributed
setup_distributed(torch.device("cpu"))
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
d = load_image_split(sys.argv[1], "train", data=DataConfig(val_fraction=0.0), train=True)
seen = {}
for epoch in (0, 1):
    rows = []
    for x in d.batches(4, epoch=epoch, seed=0, rank=rank, world_size=world):
        rows += [int(v) for v in ((x.flatten(1)[:, 0] + 0.5) * 255).round()]  # image id
    seen[epoch] = rows
json.dump(seen, open(f"{sys.argv[2]}/rank{rank}.json", "w"))
"""


def test_two_torchrun_ranks_see_each_image_once_per_epoch(tmp_path):
    import subprocess

    from test_distributed import free_port

    make_folder(tmp_path / "d", n=26, classes=("c",))
    for i in range(26):  # a distinct first pixel per image identifies it
        p = tmp_path / "d" / "c" / f"img{i:03d}.png"
        a = np.asarray(Image.open(p)).copy()
        a[0, 0, 0] = i
        Image.fromarray(a).save(p)
    (tmp_path / "s.py").write_text(SHARD_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           str(tmp_path / "s.py"), str(tmp_path / "d"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    want = list(range(26))
    for epoch in ("0", "1"):
        assert sorted(r0[epoch] + r1[epoch]) == want
        assert abs(len(r0[epoch]) - len(r1[epoch])) <= 2
    assert r0["0"] != r0["1"]  # reshuffled
    assert len(list((tmp_path / "d" / CACHE_NAME).glob("*.npy"))) == 1  # packed once


def test_the_folder64_preset_codes_a_64x64_folder_on_a_16x16_grid(tmp_path):
    from vqkit.config import get_preset
    from vqkit.models import model_for

    make_folder(tmp_path, n=4, classes=("c",), size=(80, 70))
    cfg = get_preset("folder64")
    cfg.data.val_fraction = 0.0
    data = load_image_split(str(tmp_path), "train", data=cfg.data, train=True)
    x = next(data.batches(4, epoch=0))
    assert x.shape == (4, 3, 64, 64) and data.store.shape[-1] == 72
    cfg.model.hidden_channels, cfg.model.residual_channels, cfg.model.dim = 8, 4, 4
    assert model_for(cfg).encode(x).shape[-2:] == (16, 16)


def test_a_store_is_reused_by_a_caller_asking_for_its_channels(tmp_path):
    make_folder(tmp_path, n=4, classes=("c",))
    folder = scan_image_folder(tmp_path, val_fraction=0.0)
    _, meta = open_split_store(folder, "train", image_size=32)
    npy = next((tmp_path / CACHE_NAME).glob("*.npy"))
    mtime = npy.stat().st_mtime_ns
    open_split_store(folder, "train", image_size=32, channels=3)
    assert npy.stat().st_mtime_ns == mtime
    store, meta = open_split_store(folder, "train", image_size=32, channels=1)
    assert store.shape[1] == 1 and meta["channels"] == 1


def test_a_read_only_folder_keeps_its_store_outside_it(tmp_path, monkeypatch):
    from vqkit.data.image_store import store_folder

    monkeypatch.setenv("VQKIT_DATA", str(tmp_path / "cache"))
    data = tmp_path / "photos"
    data.mkdir()
    assert store_folder(data) == data / CACHE_NAME
    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(0o555)  # marked read-only: respected even by root, as the mel cache does
    try:
        where = store_folder(ro)
        assert not (ro / CACHE_NAME).exists()
        assert where.is_relative_to(tmp_path / "cache")
    finally:
        ro.chmod(0o755)
