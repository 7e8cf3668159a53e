"""REST controllers under /api/v1 and the operations endpoints."""
