"""Exception classes: user errors (bad input, shown without a traceback) versus
internal errors (bugs).  Everything in qgt raises one of these."""


class QgtError(Exception):
    """Base of all qgt errors."""

    exit_code = 1


class UserError(QgtError):
    """Bad input: a circuit, a configuration value, a rank count, a capacity."""

    exit_code = 2


class ConfigError(UserError):
    """A configuration key or value is not allowed."""


class CircuitError(UserError):
    """A circuit cannot be read or simulated."""


class CapacityError(UserError):
    """The job does not fit the memory or scratch space it was given."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt or belongs to another circuit."""


class InternalError(QgtError):
    """A bug in qgt: please report it."""

    exit_code = 70

    def __init__(self, msg: str):
        super().__init__(f"internal error (this is a bug in qgt): {msg}")


EXIT_CHECKPOINTED = 85  # documented: a batch script requeues the job on this status


class Preempted(QgtError):
    """A stop signal arrived: a checkpoint was written and the run stopped (not an error)."""

    exit_code = EXIT_CHECKPOINTED
