"""Neural-network estimators.

pc-bSSFP relaxometry (seed 003): voxel-wise MLPs (:mod:`.mlp`) trained on protocol-matched
in-silico data (:mod:`.insilico`) as supervised (SVNN) or physics-informed self-supervised
(PINN) networks (:mod:`.train`); shipped and cached weights with SHA256 (:mod:`.weights`).
"""

from .insilico import Protocol, as_protocol, seed_protocol  # noqa: F401
from .mlp import BSSFPNet, features_from_configurations  # noqa: F401
from .train import TrainedModel, train  # noqa: F401
from .weights import WeightsError, get_model, load_model, save_model  # noqa: F401
