"""Rendering: one helper picks the full page or its fragment (through ``request.htmx``), filters, plugin panels."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import TemplateNotFound
from litestar.plugins.htmx import HTMXRequest
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from markupsafe import Markup, escape

from mediasvc.dashboard.auth import Operator

log = logging.getLogger("mediasvc.dashboard")

WEB_DIR = Path(str(files("mediasvc.web")))
TEMPLATE_DIR = WEB_DIR / "templates"
HTMX_JS = "vendor/htmx-2.0.11.min.js"  # vendored from npm htmx.org 2.0.11; see web/static/vendor/README.md

NAV = [("Overview", "/dashboard"), ("Assets", "/dashboard/assets"), ("Sessions", "/dashboard/sessions"),
       ("Queue", "/dashboard/queue"), ("Events", "/dashboard/events"), ("Plugins", "/dashboard/plugins")]


def wants_fragment(request: HTMXRequest) -> bool:
    """An htmx request that swaps a fragment (not a boosted navigation, not a history restore)."""
    return bool(request.htmx) and not request.htmx.boosted and not request.htmx.history_restore_request


def render(request: HTMXRequest, page: str, fragment: str | None = None, *, status_code: int = 200,
           **context: Any) -> Template:
    """``pages/<page>`` for a browser navigation; ``partials/<fragment>`` alone for an htmx request."""
    operator: Operator | None = getattr(request.state, "operator", None)
    if fragment and wants_fragment(request):
        context.update(operator=operator)
        return Template(template_name=f"partials/{fragment}", context=context, status_code=status_code)
    services = request.app.state.services
    links = []
    if operator is not None:
        for result in services.host.hook.menu_links(request=request):
            links.extend(result or [])
    context.update(operator=operator, nav=NAV, menu_links=sorted(links, key=lambda link: link.order),
                   path=request.url.path, htmx_js=HTMX_JS)
    return Template(template_name=f"pages/{page}", context=context, status_code=status_code)


def render_panels(request: HTMXRequest, asset: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Plugin panels (the overview's, or an asset page's when ``asset`` is given), each rendered on its own: a
    failing panel shows an error box, never breaks the page."""
    services = request.app.state.services
    engine: JinjaTemplateEngine = request.app.template_engine  # type: ignore[assignment]
    hook = services.host.hook
    results = hook.dashboard_panels(request=request) if asset is None else hook.asset_panels(request=request,
                                                                                              asset=asset)
    panels = [panel for result in results for panel in (result or [])]
    rendered = []
    for panel in sorted(panels, key=lambda p: p.order):
        try:
            html = Markup(engine.engine.get_template(panel.template).render(request=request, **panel.context))
            rendered.append({"title": panel.title, "html": html, "error": None})
        except TemplateNotFound:
            rendered.append({"title": panel.title, "html": None, "error": f"template {panel.template!r} not found"})
        except Exception as exc:  # a plugin's panel must not take the overview down: show it, log it
            log.exception("dashboard panel %r failed", panel.title)
            rendered.append({"title": panel.title, "html": None, "error": type(exc).__name__})
    return rendered


def plugin_template_dirs(host: Any) -> list[Path]:
    """``templates/`` folders beside each loaded plugin's module: where panel templates live."""
    import sys

    dirs = []
    for _name, plugin in host.pm.list_name_plugin():
        module = plugin if hasattr(plugin, "__file__") else sys.modules.get(type(plugin).__module__)
        path = Path(getattr(module, "__file__", "") or "").parent / "templates"
        if getattr(module, "__file__", None) and path.is_dir() and path != TEMPLATE_DIR and path not in dirs:
            dirs.append(path)
    return dirs


# --- filters -------------------------------------------------------------------------------------------------


def filesize(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def ago(when: datetime | None) -> str:
    if when is None:
        return "—"
    seconds = (datetime.now(timezone.utc) - when).total_seconds()
    for limit, div, unit in ((60, 1, "s"), (3600, 60, "min"), (86400, 3600, "h"), (float("inf"), 86400, "d")):
        if abs(seconds) < limit:
            return f"{int(seconds // div)} {unit} ago"
    return ""


def duration_left(seconds: float | None) -> str:
    """An ETA for people: "45 s", "3 min", "1 h 20 min"."""
    if seconds is None:
        return "—"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {round(seconds % 3600 / 60)} min"


def stamp(when: datetime | None) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if when else "—"


def badge(status: str | None) -> Markup:
    s = status or "unknown"
    return Markup(f'<span class="badge badge-{escape(s)}">{escape(s)}</span>')


def configure_engine(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.filters.update(filesize=filesize, ago=ago, stamp=stamp, badge=badge, duration_left=duration_left)
    env.trim_blocks = env.lstrip_blocks = True
