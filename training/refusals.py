"""Why a run cannot be launched now. Every caller (admin, API, commands, beat) catches
LaunchRefused and shows its message as it is; the API answers `http_status`."""


class LaunchRefused(Exception):
    """The project cannot start this run now; the message says why and what to do."""

    http_status = 409


class RoundInProgress(LaunchRefused):
    """A round of the project is already queued or running (a unique index enforces it)."""


class BrokerUnavailable(LaunchRefused):
    """The task queue could not be reached; the run was marked failed."""

    http_status = 503
