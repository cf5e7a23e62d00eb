"""Ignite handlers for the bundles: the best model kept across resume, validation that includes the
last epoch, TensorBoard image grids and a progress bar with losses."""

from anatosynth_components.handlers.best_model_saver import BestModelSaver
from anatosynth_components.handlers.final_validation import FinalValidationHandler
from anatosynth_components.handlers.image_grid import TensorBoardImageGrid, grid_rows
from anatosynth_components.handlers.progress_bar import LossProgressBar

__all__ = ["BestModelSaver", "FinalValidationHandler", "LossProgressBar", "TensorBoardImageGrid", "grid_rows"]
