"""Typed tables and the pure domain rules that act on them. Imports nothing from server/
or federation/."""

from models.base import Base
from models.jobs import Job, JobState
from models.keys import InstanceKey, KeyAlgorithm
from models.users import Role, User

__all__ = ["Base", "InstanceKey", "Job", "JobState", "KeyAlgorithm", "Role", "User"]
