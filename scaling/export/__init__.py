"""Trained models out of the framework: a run's checkpoint as a Hugging Face ``transformers`` folder."""

from scaling.export.architectures import choose_architecture
from scaling.export.writer import export_run, write_model_folder

__all__ = ["choose_architecture", "export_run", "write_model_folder"]
