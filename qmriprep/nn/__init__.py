"""Neural-network estimators.

pc-bSSFP relaxometry (seed 003): voxel-wise MLPs (:mod:`.mlp`) trained on protocol-matched
in-silico data (:mod:`.insilico`) as supervised (SVNN) or physics-informed self-supervised
(PINN) networks (:mod:`.train`); shipped and cached weights with SHA256 (:mod:`.weights`); the
run's network options (:mod:`.options`). Every learned estimator trains with the one loop of
:mod:`.loop`.
"""

from .insilico import Protocol, as_protocol, seed_protocol  # noqa: F401
from .loop import History, LoopSettings, fit  # noqa: F401
from .mlp import BSSFPNet, features_from_configurations  # noqa: F401
from .options import NetworkOptions, network_settings  # noqa: F401
from .train import TrainedModel, TrainSettings, train  # noqa: F401
from .weights import ModelSource, WeightsError, get_model, load_model, save_model  # noqa: F401
