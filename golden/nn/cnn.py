"""Golden CNN reference: integer-only quantised inference in numpy.

The semantics the hardware must reproduce bit for bit (docs/cnn.md). Tensors are numpy
integer arrays in NCHW layout; every intermediate is int64, so nothing overflows before
the explicit requantisation.

- Convolution and fully connected layers accumulate (x - x_zp) * (w - w_zp) plus an
  int32 bias; padding contributes zero after the zero-point subtraction (as ONNX
  QLinearConv / ConvInteger).
- Requantisation is dyadic (HAWQ-V3): y = clamp(round(acc * b / 2^c) + zp), b an
  integer multiplier (per tensor or per output channel), c a shift, round half up
  (floor((acc * b + 2^(c-1)) / 2^c)): exactly what the AP's MAC, SHR and CLAMP compute.
  `requantize_float` is ONNX's float-scale version (round half to even), kept to check
  the integer parts against ONNX's reference and conformance vectors.
- ReLU in the quantised domain is max(q, zp); max pooling is an integer max; average
  pooling sums the window and requantises (b/2^c standing for 1/k^2).
- A residual add rescales both branches to a common shift and adds.
- Activation blocks: a tensor whose channel c is on a grid 2^k[c] times its common one
  is read as q * 2^k[c] (`shift_channels`); its producer clamps each channel to its own
  bits.
"""

from __future__ import annotations

import math

import numpy as np


def _i64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.int64)


def _per_channel(v, ndim: int) -> np.ndarray:
    """A scalar, or one value per output channel (axis 1 of NCHW / NC)."""
    v = _i64(v)
    if v.ndim == 0:
        return v
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def shift_channels(q, k) -> np.ndarray:
    """q * 2^k[c] per channel c (axis 1): a tensor with activation blocks, channel c an
    integer on a grid 2^k[c] times coarser than the tensor's, put on the common grid
    (docs/network.md, "Block-wise activation precision")."""
    return np.left_shift(_i64(q), _per_channel(k, np.ndim(q)))


def pad_hw(x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """Zero padding of H and W: (top, left, bottom, right), as ONNX orders pads."""
    top, left, bottom, right = pads
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))


def conv2d_acc(x, x_zp, w, w_zp, bias=None, stride=(1, 1), pads=(0, 0, 0, 0),
               groups: int = 1) -> np.ndarray:
    """int64 accumulators of a 2D convolution: x (N, C, H, W), w (K, C / groups, kh, kw);
    output channel j reads input channels of its group j // (K / groups) only."""
    if groups > 1:
        x, w = _i64(x), _i64(w)
        cg, kg = x.shape[1] // groups, w.shape[0] // groups
        wz = _i64(w_zp)
        parts = [conv2d_acc(x[:, g * cg:(g + 1) * cg], x_zp, w[g * kg:(g + 1) * kg],
                            wz[g * kg:(g + 1) * kg] if wz.ndim else wz, None, stride, pads)
                 for g in range(groups)]
        acc = np.concatenate(parts, axis=1)
        return acc if bias is None else acc + _i64(bias).reshape(1, -1, 1, 1)
    x = _i64(x) - _i64(x_zp)
    w = _i64(w)
    wz = _i64(w_zp)
    w = w - (wz.reshape(-1, 1, 1, 1) if wz.ndim else wz)
    x = pad_hw(x, pads)
    n, c, h, wd = x.shape
    k, c2, kh, kw = w.shape
    if c != c2:
        raise ValueError(f"conv: input has {c} channels, weights expect {c2}")
    sh, sw = stride
    oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"conv: kernel {kh}x{kw} does not fit a padded {h}x{wd} input")
    # im2col: (N, C*kh*kw, OH*OW)
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x[:, :, i: i + sh * oh: sh, j: j + sw * ow: sw]
    acc = np.einsum("nckl...,fckl->nf...", cols, w)
    if bias is not None:
        acc = acc + _i64(bias).reshape(1, -1, 1, 1)
    return acc


def linear_acc(x, x_zp, w, w_zp, bias=None) -> np.ndarray:
    """int64 accumulators of a fully connected layer: x (N, F), w (K, F)."""
    x = _i64(x) - _i64(x_zp)
    w = _i64(w)
    wz = _i64(w_zp)
    w = w - (wz.reshape(-1, 1) if wz.ndim else wz)
    acc = x @ w.T
    if bias is not None:
        acc = acc + _i64(bias).reshape(1, -1)
    return acc


def round_shift(v, c: int) -> np.ndarray:
    """round(v / 2^c), half up: floor((v + 2^(c-1)) / 2^c); c = 0 leaves v."""
    v = _i64(v)
    if c == 0:
        return v
    return (v + (1 << (c - 1))) >> c


def requantize(acc, b, c: int, zp, qmin: int, qmax: int) -> np.ndarray:
    """clamp(round(acc * b / 2^c) + zp, qmin, qmax), b per tensor or per channel."""
    acc = _i64(acc)
    prod = acc * _per_channel(b, acc.ndim)
    return np.clip(round_shift(prod, c) + _i64(zp), qmin, qmax)


def requantize_float(acc, scale, zp, qmin: int, qmax: int) -> np.ndarray:
    """ONNX QLinearConv's requantisation: clip(acc * scale + zp) rounded half to even."""
    acc = np.asarray(acc, dtype=np.int64)
    r = acc.astype(np.int32) * scale + np.asarray(zp)
    return np.round(np.clip(r, qmin, qmax)).astype(np.int64)


def dyadic(scale: float, bits: int = 16) -> tuple[int, int]:
    """(b, c) with b / 2^c closest to `scale` and b < 2^bits (b >= 2^(bits-1) unless the
    shift would be negative)."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    c = bits - 1 - math.floor(math.log2(scale))
    c = max(c, 0)
    b = round(scale * (1 << c))
    if b >= 1 << bits:  # rounding carried into one more bit
        b, c = (b + 1) >> 1, c - 1
    return int(b), int(c)


def relu(q, zp) -> np.ndarray:
    return np.maximum(_i64(q), _i64(zp))


def maxpool2d(q, k: int, stride: int | None = None, pads=(0, 0, 0, 0)) -> np.ndarray:
    """Integer max over k x k windows (padding never wins: it is the minimum int)."""
    stride = stride or k
    q = _i64(q)
    lo = np.iinfo(np.int64).min
    top, left, bottom, right = pads
    q = np.pad(q, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=lo)
    n, c, h, w = q.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.full((n, c, oh, ow), lo, dtype=np.int64)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, q[:, :, i: i + stride * oh: stride, j: j + stride * ow: stride])
    return out


def avgpool2d(q, zp, k, b: int, c: int, qmin: int, qmax: int,
              stride: int | None = None, pads=(0, 0, 0, 0)) -> np.ndarray:
    """Average over k x k windows (k an int, or (kh, kw)): the sum of (q - zp) with zero
    padding, requantised by b / 2^c ~ 1/(kh kw) (the divisor counts the padding, as ONNX's
    count_include_pad=1)."""
    kh, kw = (k, k) if isinstance(k, int) else k
    stride = stride or kh
    q = pad_hw(_i64(q) - _i64(zp), pads)
    n, ch, h, w = q.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    acc = np.zeros((n, ch, oh, ow), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            acc += q[:, :, i: i + stride * oh: stride, j: j + stride * ow: stride]
    return requantize(acc, b, c, zp, qmin, qmax)


def residual_add(qa, za, ba, qb, zb, bb, c: int, zy, qmin: int, qmax: int) -> np.ndarray:
    """clamp(round(((qa - za) * ba + (qb - zb) * bb) / 2^c) + zy): both branches rescaled
    to one shift, then added."""
    acc = (_i64(qa) - _i64(za)) * _i64(ba) + (_i64(qb) - _i64(zb)) * _i64(bb)
    return np.clip(round_shift(acc, c) + _i64(zy), qmin, qmax)
