"""The REST API under /api/v1/: the console's pages as JSON, with scoped, hashed, expiring tokens."""
