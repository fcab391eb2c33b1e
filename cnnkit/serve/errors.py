"""The one exception the explorer's API raises for a request it refuses."""


class BadRequest(Exception):
    """A refused request: answered as ``{"error": message}`` with HTTP ``status``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status
