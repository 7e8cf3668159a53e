"""(being written)"""

from litestar import Controller


class UploadController(Controller):
    path = "/uploads"


# Routes outside /api/v1 that authenticate by signature instead of API key (the local backend's presigned PUT).
PUBLIC_UPLOAD_ROUTES: list = []
