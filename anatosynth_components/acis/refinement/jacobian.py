"""``jacobian_determinant``: det of the Jacobian of p -> p + u(p) for a displacement field u.

A transform is locally invertible (no folding) where the determinant is positive; the registration
trainer logs the fraction of voxels where it is not.  MONAI has the spatial gradients inside its
deformation losses but no Jacobian determinant, hence this function.  Central differences inside the
field, one-sided at its border (``torch.gradient``), in voxel units (the DDF's units).

Example::

    >>> ddf = torch.zeros(1, 2, 8, 8)
    >>> ddf[:, 0] = 0.5 * torch.arange(8.0).view(8, 1)     # stretch axis 0 by 1.5
    >>> torch.allclose(jacobian_determinant(ddf), torch.full((1, 8, 8), 1.5))
    True
"""

from __future__ import annotations

import torch


def jacobian_determinant(ddf: torch.Tensor) -> torch.Tensor:
    """ddf (B, D, *S) with D = len(S) in {2, 3} -> det(I + grad u) (B, *S)."""
    dims = ddf.ndim - 2
    if dims not in (2, 3) or ddf.shape[1] != dims:
        raise ValueError(
            f"expected a displacement field (B, D, *S) with D = len(S) in {{2, 3}}, got {tuple(ddf.shape)}"
        )
    # jac[..., i, j] = d(p_i + u_i) / d p_j
    grads = [
        torch.stack(torch.gradient(ddf[:, i], dim=list(range(1, dims + 1))), dim=-1) for i in range(dims)
    ]
    jac = torch.stack(grads, dim=-2) + torch.eye(dims, dtype=ddf.dtype, device=ddf.device)
    return torch.linalg.det(jac)


def folding_fraction(ddf: torch.Tensor) -> torch.Tensor:
    """Fraction of voxels per sample (B,) where the Jacobian determinant is <= 0."""
    return (jacobian_determinant(ddf) <= 0).flatten(1).float().mean(1)
