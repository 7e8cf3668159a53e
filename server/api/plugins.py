"""What is loaded: plugins, their versions and the hooks they implement."""

from __future__ import annotations

from litestar import Controller, get

from mediasvc.schemas import PluginOut
from mediasvc.services import ServicesDep


class PluginController(Controller):
    path = "/plugins"
    tags = ["operations"]

    @get("/", summary="Loaded (and blocked) plugins with the hooks each implements")
    async def list_plugins(self, services: ServicesDep) -> list[PluginOut]:
        return [PluginOut(name=i.name, version=i.version, hooks=i.hooks, source=i.source, blocked=i.blocked)
                for i in services.host.plugin_infos()]
