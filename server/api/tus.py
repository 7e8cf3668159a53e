"""(being written)"""

from litestar import Controller


class TusController(Controller):
    path = "/tus"
