"""Float comparisons whose tolerance comes from the dtype and the size of the values compared.

Two computations of the same quantity in a different order (chunked vs one pass, batched vs one at a time, a
fast kernel vs a loop, AVX-512 vs AVX2 vs the portable kernels that ``ATEN_CPU_CAPABILITY=default`` selects) agree
to a few units of rounding of the largest value involved, not to a fixed number of decimals. So the absolute
tolerance here is ``k * eps(dtype) * max|expected|``: ``k`` says how many roundings of the largest value the two
orders may differ by (deeper computations: larger ``k``), and the failure message is torch's own (greatest
absolute and relative difference, where), prefixed with what was compared.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def scaled_atol(expected: Any, k: float, dtype: torch.dtype | None = None) -> float:
    """``k * eps(dtype) * max|expected|`` (dtype: ``expected``'s when floating, else float32).

    Args:
        expected: The reference values (tensor, array, or nested lists).
        k: Roundings of the largest value the two computations may differ by.
        dtype: The dtype whose machine epsilon sets the unit (e.g. float32 when a float64 result was computed
            through float32 kernels).
    """
    ref = torch.as_tensor(np.asarray(expected) if not isinstance(expected, torch.Tensor) else expected)
    ref = ref.detach()
    if dtype is None:
        dtype = ref.dtype if ref.is_floating_point() else torch.float32
    finite = ref[torch.isfinite(ref)] if ref.is_floating_point() else ref
    scale = float(finite.abs().max()) if finite.numel() else 0.0
    return k * torch.finfo(dtype).eps * (scale or 1.0)


def assert_close_scaled(
    actual: Any, expected: Any, *, k: float = 64, dtype: torch.dtype | None = None, what: str = "", **kwargs: Any
) -> None:
    """``torch.testing.assert_close`` with ``rtol=0`` and ``atol=scaled_atol(expected, k, dtype)``.

    Works on tensors and on numpy arrays (both sides the same kind); ``what`` prefixes torch's message, which is
    kept whole. ``kwargs`` pass through (``equal_nan=True``, ``check_dtype=False``).
    """
    atol = scaled_atol(expected, k, dtype)

    def message(generated: str) -> str:
        head = f"{what}: " if what else ""
        return f"{head}{generated}\n(atol {atol:.3g} = {k} * eps * max|expected|)"

    torch.testing.assert_close(actual, expected, rtol=0.0, atol=atol, msg=message, **kwargs)
