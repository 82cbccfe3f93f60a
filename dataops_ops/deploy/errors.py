"""What the deploy commands fail with, in one module light enough for ``dataops`` to map to exit codes."""

from dataops_assets.environments import UnknownEnvironmentError


class ArtifactError(RuntimeError): ...  # the artifact cannot be built, or does not match its manifest


class EnvironmentNotReadyError(RuntimeError): ...  # the environment root is not initialised, or not usable


class DeployLockedError(RuntimeError): ...  # another deploy holds the environment's lock


class ServiceError(RuntimeError): ...  # a service or command did not start, did not answer in time, or failed


class WebserverError(RuntimeError): ...  # the webserver is not reachable, or answered with an error


class LocationLoadError(RuntimeError): ...  # the code location did not load (its error is in the message)


class GateTimeoutError(RuntimeError): ...  # a gate run did not finish in time


class DeployError(RuntimeError): ...  # refused before changing anything (bad artifact, not allowed, webserver down)


class DeployFailedError(RuntimeError): ...  # a deploy that changed the environment failed and was rolled back


NOT_READY = (UnknownEnvironmentError, EnvironmentNotReadyError, ServiceError)  # exit code 2
REFUSED = (DeployError, DeployLockedError, ArtifactError)  # exit code 3
