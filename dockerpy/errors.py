# -*- test-case-name: dockerpy.test.test_api_errors -*-
"""The engine's error taxonomy.

Every part of the engine raises these (or lets unexpected exceptions
through); the API layer maps them to Docker's status codes in one place
(``dockerpy.api.app``).  Messages are what the user reads: write them the way
Docker words the same failure.
"""


class DockerError(Exception):
    """Base of the errors a client is told about; ``status`` is the HTTP code."""

    status = 500

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class InvalidParameter(DockerError):
    status = 400


class Forbidden(DockerError):
    status = 403


class NotFound(DockerError):
    status = 404


class Conflict(DockerError):
    status = 409


class NotModified(DockerError):
    status = 304


class Unavailable(DockerError):
    status = 503


class NotImplementedYet(DockerError):
    status = 501


class SystemError_(DockerError):
    """An internal failure we understand well enough to word (500)."""

    status = 500


def no_such_container(name: str) -> NotFound:
    return NotFound(f"No such container: {name}")


def no_such_image(name: str) -> NotFound:
    return NotFound(f"No such image: {name}")
