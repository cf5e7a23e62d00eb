"""Shared training machinery of both methods: helpers on (possibly DDP-wrapped) networks."""

from anatosynth_components.engines.modules import frozen, unwrap

__all__ = ["frozen", "unwrap"]
