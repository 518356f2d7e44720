"""Compressed files: a run's codes range-coded (``constriction``) with a prior's probabilities,
or with adaptive unigram counts when no prior is given.

File layout: ``b"VQKZ"``, the header length (uint32, little-endian), the header (UTF-8 JSON: the
code file header of :mod:`vqkit.codes.format` with the VQ-VAE's fingerprint, the prior's
fingerprint and run, the payload's length in 32-bit words and its sha256), then the payload.

Encoder and decoder must see bit-identical probabilities. The prior's are computed for a
fixed chunk of ``CHUNK`` items at a time (a short chunk padded), token by token through the
key/value cache (the path decoding has to take), in float64 on one CPU thread, then quantized
to integer frequencies (``floor(p * (2**PRECISION - V)) + 1``) before they reach the coder:
nothing depends on the caller's batch size, thread count or process. The
adaptive unigram model is integer counts from the start.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import constriction
import numpy as np
import torch

from vqkit.codes.cache import vqvae_sha256
from vqkit.codes.files import check_fits_model, encode_files, write_decoded
from vqkit.codes.fingerprint import model_fingerprint
from vqkit.codes.format import CodeFile, code_dtype
from vqkit.errors import DataError, VQKitError
from vqkit.models import load_model
from vqkit.models.prior import CodePrior, codes_to_tokens
from vqkit.utils import atomic_write_bytes

__all__ = ["MAGIC", "PRECISION", "compress_files", "decode_tokens", "decompress_file",
           "encode_tokens", "read_compressed"]

MAGIC = b"VQKZ"
FORMAT_VERSION = 1
PRECISION = 20  # bits of the integer frequencies handed to the coder (it works at 24)
CHUNK = 32  # items whose prior probabilities are computed together (a fixed shape)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def quantize(p: np.ndarray) -> np.ndarray:
    """float64 probabilities (..., V) -> integer frequencies (as float64), each at least 1."""
    return np.floor(p * float(2 ** PRECISION - p.shape[-1])) + 1.0


class _PriorModel:
    """Frequencies of the tokens of a chunk of items under the prior, in float64 on the CPU.

    Items are coded ``CHUNK`` at a time (a short chunk is padded with zero tokens, which are not
    coded), so that every forward step has the same shape at both ends."""

    def __init__(self, prior: CodePrior) -> None:
        self.prior = copy.deepcopy(prior).double().eval()

    @torch.no_grad()
    def chunk(self, tokens: np.ndarray) -> Iterator[np.ndarray]:
        """``tokens`` (CHUNK, L): yields the frequencies (CHUNK, V) of column t, then reads
        ``tokens[:, t]`` (encoding: given; decoding: filled in by the caller after the yield)."""
        cache = self.prior.new_cache(CHUNK)
        prev = None
        for t in range(tokens.shape[1]):
            logits = self.prior.step(prev, None, cache, CHUNK)
            yield quantize(torch.softmax(logits, -1).numpy())
            prev = torch.from_numpy(tokens[:, t].copy())


class _UnigramModel:
    """Adaptive counts per residual stage: every count starts at 1 and grows with each code."""

    def __init__(self, vocab: int, stages: int) -> None:
        self.counts = np.ones((stages, vocab), dtype=np.float64)

    def item(self, tokens: np.ndarray, length: int) -> Iterator[np.ndarray]:
        stages = self.counts.shape[0]
        for t in range(length):
            yield self.counts[t % stages].copy()
            self.counts[t % stages, int(tokens[t])] += 1


def _chunks(lengths: Sequence[int]) -> Iterator[np.ndarray]:
    """Item indices, ``CHUNK`` at a time, in order of length (then of index): both ends know the
    lengths, and a chunk of similar lengths pads little (equal lengths: the items in order)."""
    order = np.array(sorted(range(len(lengths)), key=lambda i: (int(lengths[i]), i)),
                     dtype=np.int64)
    for lo in range(0, len(order), CHUNK):
        yield order[lo:lo + CHUNK]


def _check_lengths(prior: CodePrior, lengths: Sequence[int]) -> None:
    for n in lengths:
        prior.check_length(int(n))


def encode_tokens(sequences: Sequence[np.ndarray], *, prior: CodePrior | None = None,
                  vocab: int, stages: int = 1) -> np.ndarray:
    """Range-code token sequences (each 1-D, < ``vocab``; with a prior, of a length it models)
    in order: uint32 words."""
    seqs = [np.asarray(seq, dtype=np.int64).reshape(-1) for seq in sequences]
    encoder = constriction.stream.queue.RangeEncoder()
    categorical = constriction.stream.model.Categorical(perfect=False)
    with _one_thread():
        if prior is None:
            model = _UnigramModel(vocab, stages)
            for tokens in seqs:
                if tokens.size:
                    freqs = np.stack(list(model.item(tokens, tokens.size)))
                    encoder.encode(tokens.astype(np.int32), categorical, freqs)
            return encoder.get_compressed().astype(np.uint32)
        lengths = [seq.size for seq in seqs]
        _check_lengths(prior, lengths)
        model = _PriorModel(prior)
        for idx in _chunks(lengths):
            n = np.array([lengths[i] for i in idx])
            tokens = np.zeros((CHUNK, int(n.max())), dtype=np.int64)
            for row, i in enumerate(idx):
                tokens[row, :n[row]] = seqs[i]
            freqs = np.stack(list(model.chunk(tokens)))[:, :len(idx)]  # (L, n, V), t-major
            real = np.arange(tokens.shape[1])[:, None] < n[None, :]  # (L, n)
            encoder.encode(np.ascontiguousarray(tokens[:len(idx)].T[real], np.int32),
                           categorical, np.ascontiguousarray(freqs[real]))
    return encoder.get_compressed().astype(np.uint32)


def decode_tokens(words: np.ndarray, lengths: Sequence[int], *, prior: CodePrior | None = None,
                  vocab: int, stages: int = 1) -> list[np.ndarray]:
    """The inverse of :func:`encode_tokens`, given each sequence's length."""
    decoder = constriction.stream.queue.RangeDecoder(np.asarray(words, dtype=np.uint32))
    categorical = constriction.stream.model.Categorical(perfect=False)
    with _one_thread():
        if prior is None:
            model = _UnigramModel(vocab, stages)
            out = []
            for n in lengths:
                tokens = np.zeros(int(n), dtype=np.int64)
                for t, freqs in enumerate(model.item(tokens, int(n))):
                    tokens[t] = int(decoder.decode(categorical, freqs[None])[0])
                out.append(tokens)
            return out
        _check_lengths(prior, lengths)
        model = _PriorModel(prior)
        got: list[np.ndarray | None] = [None] * len(lengths)
        for idx in _chunks(lengths):
            n = np.array([int(lengths[i]) for i in idx])
            tokens = np.zeros((CHUNK, int(n.max())), dtype=np.int64)
            for t, freqs in enumerate(model.chunk(tokens)):
                rows = np.flatnonzero(t < n)
                tokens[rows, t] = decoder.decode(categorical, np.ascontiguousarray(freqs[rows]))
            for row, i in enumerate(idx):
                got[i] = tokens[row, :n[row]].copy()
    return got  # type: ignore[return-value]


def _tokens(codes: np.ndarray, order: str) -> np.ndarray:
    """An item's codes (H', W'[, K]) as the prior reads them (``order``)."""
    return codes_to_tokens(torch.from_numpy(np.ascontiguousarray(codes))[None], order)[0].numpy()


def _codes(tokens: np.ndarray, shape: tuple[int, ...], order: str) -> np.ndarray:
    """The inverse of :func:`_tokens` for codes of ``shape``."""
    if order != "time":
        return tokens.reshape(shape)
    return np.ascontiguousarray(tokens.reshape(shape[1], shape[0], *shape[2:]).swapaxes(0, 1))


def compress_files(run_dir: str | Path, inputs: Sequence[str | Path], out: str | Path, *,
                   prior_run: str | Path | None = None, which: str = "best") -> dict[str, Any]:
    """Encode ``inputs`` with the run's VQ-VAE (as ``vqkit encode`` does) and range-code the
    codes into ``out``. Returns the header and ``bits`` (payload), ``file_bits`` (whole file)
    and ``rate`` / ``file_rate`` in bits per pixel (images) or per second (speech)."""
    cf = encode_files(run_dir, inputs, which=which, device="cpu")
    vocab, stages = int(cf.meta["codebook_size"]), int(cf.meta["num_quantizers"])
    prior = prior_info = None
    order = "raster"
    if prior_run is not None:
        prior, prior_cfg = load_model(prior_run, "best", "cpu", kind="prior")
        if prior_cfg.prior.vqvae_sha256 != vqvae_sha256(run_dir, which):
            raise VQKitError(f"{prior_run}: models the codes of another VQ-VAE than {run_dir} "
                             f"({which} checkpoint)")
        pc = prior_cfg.prior
        order = pc.order
        for name, c in zip(cf.names, cf.codes, strict=True):
            if order == "time" and (c.shape[0] != pc.grid[0] or c.shape[1] > pc.grid[1]):
                raise VQKitError(f"{name}: {c.shape[1]} code frames of {c.shape[0]} rows; the "
                                 f"prior models up to {pc.grid[1]} frames of {pc.grid[0]} rows "
                                 f"(the longest utterance it trained on); compress without "
                                 f"--prior")
            if order != "time" and c.shape[:2] != tuple(pc.grid):
                raise VQKitError(f"{name}: a {c.shape[0]}x{c.shape[1]} code grid, the prior "
                                 f"models {pc.grid[0]}x{pc.grid[1]}; compress without --prior")
        prior_info = {"run": str(prior_run), "fingerprint": model_fingerprint(prior, prior_cfg),
                      "order": order}
    words = encode_tokens([_tokens(c, order) if prior is not None else c.reshape(-1)
                           for c in cf.codes], prior=prior, vocab=vocab, stages=stages)
    payload = words.astype("<u4").tobytes()
    header = {**cf.meta, "compressed_format": FORMAT_VERSION, "precision": PRECISION,
              "chunk": CHUNK,
              "shapes": [list(c.shape) for c in cf.codes], "prior": prior_info,
              "payload_words": len(payload) // 4,
              "payload_sha256": hashlib.sha256(payload).hexdigest()}
    head = json.dumps(header, sort_keys=True).encode()
    data = MAGIC + struct.pack("<I", len(head)) + head + payload
    atomic_write_bytes(Path(out), data)
    items = cf.meta["items"]
    per = (sum(it["height"] * it["width"] for it in items) if cf.task == "image"
           else sum(it["duration_s"] for it in items))  # pixels or seconds
    bits, file_bits = 8 * len(payload), 8 * len(data)
    return {**header, "path": str(out), "bits": bits, "file_bits": file_bits,
            "bits_per_code": bits / max(1, sum(c.size for c in cf.codes)),
            "rate": bits / per, "file_rate": file_bits / per,
            "raw_rate": cf.rate(), "rate_unit": cf.rate_unit}


def read_compressed(path: str | Path) -> tuple[dict[str, Any], np.ndarray]:
    """The header and payload (uint32 words) of a compressed file, checked: DataError naming
    the file when it is not one, truncated or corrupt."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if data[:4] != MAGIC:
        raise DataError(f"{path}: not a vqkit compressed file (written by `vqkit compress`)")
    if len(data) < 8:
        raise DataError(f"{path}: truncated (no header)")
    (n,) = struct.unpack("<I", data[4:8])
    if len(data) < 8 + n:
        raise DataError(f"{path}: truncated ({len(data)} bytes, the header alone needs {8 + n})")
    try:
        header = json.loads(data[8:8 + n])
        words = int(header["payload_words"])
        want, shapes = str(header["payload_sha256"]), header["shapes"]
        if header.get("compressed_format") != FORMAT_VERSION:
            raise DataError(f"{path}: compressed format {header.get('compressed_format')!r}, "
                            f"this vqkit reads {FORMAT_VERSION}")
        if header.get("chunk", CHUNK) != CHUNK:
            raise DataError(f"{path}: coded in chunks of {header['chunk']} items, this vqkit "
                            f"codes {CHUNK}")
        if len(shapes) != len(header["names"]) or len(shapes) != len(header["items"]):
            raise ValueError("shapes, names and items differ in number")
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: corrupt header ({e})") from None
    payload = data[8 + n:]
    if len(payload) != 4 * words:
        raise DataError(f"{path}: truncated ({len(data)} bytes, expected "
                        f"{8 + n + 4 * words})" if len(payload) < 4 * words else
                        f"{path}: {len(payload) - 4 * words} bytes after the payload")
    if hashlib.sha256(payload).hexdigest() != want:
        raise DataError(f"{path}: corrupt payload (checksum mismatch)")
    return header, np.frombuffer(payload, dtype="<u4").astype(np.uint32)


def decompress_file(path: str | Path, out_dir: str | Path, *, run_dir: str | Path | None = None,
                    prior_run: str | Path | None = None) -> list[Path]:
    """Decode a compressed file into ``out_dir`` (``<name>.png`` or ``.wav``: what ``vqkit
    decode`` writes for the same codes). The models default to the runs named in the file;
    either one whose fingerprint differs from the file's is refused (nothing is written)."""
    header, words = read_compressed(path)
    run_dir = run_dir or header["run"]
    which = str(header.get("checkpoint", "best"))
    vqvae, cfg = load_model(run_dir, which, "cpu", kind="vqvae")
    fp = model_fingerprint(vqvae, cfg)
    if fp != header["fingerprint"]:
        raise VQKitError(f"{path}: made with model {header['fingerprint'][:12]} "
                         f"({header['run']}), but {run_dir} ({which}) is model {fp[:12]}; "
                         f"decompress with the model that compressed it")
    prior = None
    if header["prior"] is not None:
        prior_run = prior_run or header["prior"]["run"]
        prior, prior_cfg = load_model(prior_run, "best", "cpu", kind="prior")
        pfp = model_fingerprint(prior, prior_cfg)
        if pfp != header["prior"]["fingerprint"]:
            raise VQKitError(f"{path}: coded with prior {header['prior']['fingerprint'][:12]} "
                             f"({header['prior']['run']}), but {prior_run} is prior {pfp[:12]}; "
                             f"decompress with the prior that compressed it")
    vocab, stages = int(header["codebook_size"]), int(header["num_quantizers"])
    shapes = [tuple(int(d) for d in shape) for shape in header["shapes"]]
    tokens = decode_tokens(words, [int(np.prod(shape)) for shape in shapes], prior=prior,
                           vocab=vocab, stages=stages)
    order = str((header["prior"] or {}).get("order", "raster"))
    codes = [_codes(t, shape, order).astype(code_dtype(vocab))
             for t, shape in zip(tokens, shapes, strict=True)]
    cf = CodeFile(codes, list(header["names"]), header["fingerprint"], header, Path(path))
    check_fits_model(cf, vqvae)
    return write_decoded(cf, vqvae, cfg, out_dir)
