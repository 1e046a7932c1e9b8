"""Online W&B needs an API key: check for one before any work, so a missing login is a one-line
error (exit 2) instead of a traceback halfway through a run. Offline and disabled need nothing."""

from __future__ import annotations

from scaling.errors import ScalingError


def require_wandb_login(mode: str, setting: str) -> None:
    """Raise :class:`ScalingError` when ``mode`` is ``online`` and no W&B API key is configured.

    ``setting`` names the option in the message (``logging.wandb`` or ``--wandb``). Uses
    ``wandb.login(verify=False)``: it reads the key from WANDB_API_KEY or ~/.netrc without a network
    call, and without a terminal it fails instead of prompting.
    """
    if mode != "online":
        return
    import wandb

    # an offline run earlier in this process leaves W&B's global mode offline, where login checks nothing
    wandb.setup(settings=wandb.Settings(silent=True, mode="online"))
    try:
        wandb.login(verify=False)
    except Exception as e:  # wandb.errors.UsageError: "No API key configured"
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise ScalingError(
            f"{setting}=online but W&B is not logged in here ({reason}); run `wandb login` or set "
            f"WANDB_API_KEY, or use {setting}=offline and `wandb sync` the run later"
        ) from None
