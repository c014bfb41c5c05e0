"""HTTP layer: FastAPI routers, dependencies, error rendering and response formats."""
