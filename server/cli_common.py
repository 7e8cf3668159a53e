"""What every `mediasvc` command shares: settings from the command line, one-line errors, progress lines."""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO, Any, Callable

import click

from mediasvc.settings import Settings, load_settings


class CliError(click.ClickException):
    """A failure the user can act on, printed as one line: ``mediasvc: <message>``, exit status 1."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"mediasvc: {self.format_message()}", err=True, file=file)


def settings_for(ctx: click.Context, **overrides: Any) -> Settings:
    """Settings from the TOML file (``--config``), ``MEDIASVC_*`` and the command's options; a bad value raises
    SettingsError, which the entry point prints as one line."""
    return load_settings(toml_path=ctx.obj.get("config"), **overrides)


def data_dir_of(ctx: click.Context, data_dir: str | None) -> Path:
    """``--data-dir``, else ``data_dir`` from ``MEDIASVC_DATA_DIR`` or the TOML file, else ``./data``."""
    return Path(data_dir or settings_for(ctx).data_dir).resolve()


def data_dir_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--data-dir", type=click.Path(file_okay=False), help=help_text)


def step(message: str) -> Callable[[], None]:
    """Print a progress line for a long step; the returned function prints how long it took."""
    started = time.perf_counter()
    click.echo(f"  {message}…", err=True, nl=False)
    return lambda: click.echo(f" done ({time.perf_counter() - started:.1f}s)", err=True)
