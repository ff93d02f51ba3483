"""The declarative spec: models, loading with positions, validation and desired state.

load_spec(path) -> LoadedSpec        raises SpecError listing every problem
check_spec(path) -> (LoadedSpec | None, [Diagnostic])
desired(spec, base_dir) -> {datacenter: Resources}
desired_datacenter(loaded, name=None) -> Resources
"""

from gitkv.spec.desired import Desired, desired, desired_datacenter
from gitkv.spec.load import LoadedSpec, check_spec, load_spec
from gitkv.spec.model import Spec

__all__ = [
    "Desired",
    "LoadedSpec",
    "Spec",
    "check_spec",
    "desired",
    "desired_datacenter",
    "load_spec",
]
