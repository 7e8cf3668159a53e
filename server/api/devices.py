"""(being written)"""

from litestar import Controller


class DeviceController(Controller):
    path = "/devices"
