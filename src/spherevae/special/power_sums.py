"""Power sums ``sum_j x^j c_j`` in few tensor operations, the building block of both regions."""

from __future__ import annotations

import torch
from torch import Tensor

from ..tracing import is_compiling


def powers(x: Tensor, n: int) -> Tensor:
    """``[x^0, ..., x^(n-1)]`` along a new last axis."""
    ones = torch.ones_like(x).unsqueeze(-1)
    if n == 1:
        return ones
    return torch.cat([ones, torch.cumprod(x.unsqueeze(-1).expand(*x.shape, n - 1), dim=-1)], dim=-1)


_POWER_BLOCK = 8


def column_major(coef: Tensor) -> Tensor:
    """``coef`` ``(n, c)`` with the same values, stored so that ``coef.t()`` is contiguous (for
    :func:`power_sum`'s transposed product)."""
    return coef.t().contiguous().t()


def block_coefficients(coef: Tensor) -> tuple[Tensor, int]:
    """``coef`` ``(n, c)`` laid out for :func:`power_sum`: ``(8, n_blocks * c)`` and ``n_blocks``.

    Row ``i - 1``, column ``(b, l)`` holds ``coef[8 b + i - 1, l]`` (zero past ``n``).
    """
    n, c = coef.shape
    n_blocks = -(-n // _POWER_BLOCK)
    if n_blocks * _POWER_BLOCK > n:
        coef = torch.cat([coef, coef.new_zeros(n_blocks * _POWER_BLOCK - n, c)])
    blocked = coef.reshape(n_blocks, _POWER_BLOCK, c).transpose(0, 1).reshape(_POWER_BLOCK, -1)
    return blocked, n_blocks


# a power sum forms all n powers per element (one cumprod, one matrix product) when there are few terms
# or few elements, and the blocked form otherwise (measured on a CPU: the direct form is faster up to
# 64 terms at any batch size, and up to 180 terms at 64 elements; the blocked one at 180 terms and more
# than a few hundred elements)
_DIRECT_POWERS_MAX_TERMS = 64


_DIRECT_POWERS_MAX_ELEMENTS = 16384


# from this many elements the direct form's product runs as (c, n) @ (n, elements): a matrix product
# with c = 2 columns is about twice as slow as its transpose with 2 rows on a CPU (measured: 33 against
# 15 us at 1024 elements and 49 terms, 510 against 237 us at 16384), while at 64 elements it is 1 us
# faster as it is
_TRANSPOSED_PRODUCT_MIN_ELEMENTS = 256


def power_sum(x: Tensor, coef: Tensor, blocked: tuple[Tensor, int] | None = None) -> Tensor:
    """``sum_{j=1..n} x^j coef[j - 1]`` for ``x`` of shape ``(...)`` and ``coef`` ``(n, c)``: ``(..., c)``.

    With few terms or few elements, the powers ``x^1 .. x^n`` are formed at once (four tensor
    operations: at small sizes each operation's dispatch costs more than its arithmetic). Otherwise
    blocked (Paterson and Stockmeyer): with ``j = 8 b + i`` and ``y = x^8`` the sum is
    ``sum_b y^b (sum_{i=1..8} x^i coef[8 b + i - 1])``, whose inner sums for every block are one
    matrix product with the powers ``x^1 .. x^8``; ``blocked = block_coefficients(coef)`` if the
    caller has it cached. The same terms are added either way, but the blocked form never holds ``n``
    powers per element: on a CPU such a tensor (hundreds of KB at batch 1024 and 180 terms) costs
    more in page faults than all the arithmetic. Under ``torch.compile``, Horner's rule (the terms are
    then added in another order: equal to rounding).
    """
    n = coef.shape[0]
    if is_compiling():
        # traced by torch.compile: Horner's rule, n fused multiply-adds per element in one generated
        # loop, where the cumulative product and the matrix product would be two library calls; the
        # columns lead (c, ...), so that the loop runs along the elements of x, not along the c = 2
        # columns
        row = x.unsqueeze(0)
        columns = coef.reshape(n, coef.shape[1], *([1] * x.dim()))
        acc = columns[n - 1].expand(coef.shape[1], *x.shape)
        for j in range(n - 2, -1, -1):
            acc = torch.addcmul(columns[j], acc, row)
        return (acc * row).movedim(0, -1)
    if n <= _DIRECT_POWERS_MAX_TERMS or x.numel() * n <= _DIRECT_POWERS_MAX_ELEMENTS:
        pows = torch.cumprod(x.unsqueeze(-1).expand(*x.shape, n), dim=-1)
        if x.numel() < _TRANSPOSED_PRODUCT_MIN_ELEMENTS:
            return pows @ coef
        # (c, n) @ (n, elements), transposed back as a view; the cached coefficients are stored
        # column-major (column_major), so that their transpose needs no copy
        coef_t = coef.t()
        if not coef_t.is_contiguous():
            coef_t = coef_t.contiguous()
        sums = (coef_t @ pows.view(-1, n).t()).t()
        return sums if x.dim() == 1 else sums.reshape(*x.shape, coef.shape[1])
    coef_blocked, n_blocks = blocked if blocked is not None else block_coefficients(coef)
    c = coef.shape[1]
    low = torch.cumprod(x.unsqueeze(-1).expand(*x.shape, _POWER_BLOCK), dim=-1)  # x^1 .. x^8
    blocks = (low @ coef_blocked).reshape(*x.shape, n_blocks, c)
    if n_blocks == 1:
        return blocks[..., 0, :]
    y = low[..., -1:]  # x^8
    y_pows = torch.cumprod(y.expand(*x.shape, n_blocks - 1), dim=-1)  # y^1 .. y^(n_blocks - 1)
    return blocks[..., 0, :] + (blocks[..., 1:, :] * y_pows.unsqueeze(-1)).sum(-2)
