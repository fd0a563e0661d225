"""The Redis store, one concern per module: workflow definitions, runs,
leases (the worker protocol), job logs, the in-job SDK, workers, dead letters,
the ready queues as operators see them, maintenance. Every
state change is one Lua script call; see server/lua/_keys.lua for the key
layout."""

from __future__ import annotations

from .base import label_key
from .batch import BatchMixin
from .control import ControlMixin
from .deadletters import DeadLettersMixin
from .deciding import DecidingMixin
from .leases import Beat, LeasesMixin
from .logs import LOG_LEVELS, LogsMixin, Page
from .maintenance import MaintenanceMixin
from .queues import QueuesMixin
from .runs import RunsMixin
from .schedules import SchedulesMixin
from .starts import Started, StartsMixin, When
from .sdk import SdkMixin
from .views import TERMINAL, WIRE_STATUS
from .workers import WorkersMixin
from .workflows import Defined, WorkflowsMixin, definition_version


class Store(WorkflowsMixin, StartsMixin, RunsMixin, SchedulesMixin, BatchMixin, LeasesMixin, LogsMixin, SdkMixin,
            WorkersMixin, DeadLettersMixin, QueuesMixin, MaintenanceMixin, DecidingMixin, ControlMixin):
    pass


__all__ = ["Beat", "Defined", "LOG_LEVELS", "Page", "Started", "Store", "TERMINAL", "WIRE_STATUS", "When",
           "definition_version", "label_key"]
