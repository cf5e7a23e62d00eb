"""Inferers: whole-volume synthesis from slice stacks."""

from anatosynth_components.inferers.slice_stack_inferer import SliceStackInferer, blend_weights

__all__ = ["SliceStackInferer", "blend_weights"]
