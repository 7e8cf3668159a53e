"""Editable installs of the core get the checkout finder (scripts/editable/) instead of hatchling's path file."""

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class EditableCheckoutHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if version == "editable":
            build_data["force_include_editable"]["scripts/editable/_mediasvc_editable.pth"] = "_mediasvc_editable.pth"
