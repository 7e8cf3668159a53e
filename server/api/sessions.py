"""(being written)"""

from litestar import Controller


class SessionController(Controller):
    path = "/sessions"
