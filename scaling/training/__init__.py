"""The trainer: a LightningModule, a LightningDataModule, callbacks, and ``train(cfg) -> RunResult``.

One module per job: :mod:`.lightning_module` (``LanguageModel``), :mod:`.data_module`
(``TokenDataModule``), :mod:`.optim` (AdamW groups), :mod:`.schedules` (LR schedules incl. WSD),
:mod:`.metrics` / :mod:`.divergence` / :mod:`.checkpointing` (callbacks), :mod:`.run_files` (the
run dir's files, cheap to import) and
:mod:`.train` (``train``). Import the public names from :mod:`scaling`.
"""
