"""Neural operators by name: ``build("fno" | "tfno" | "neural_hss", **config)``.

FNO and TFNO come from the neuraloperator package; Neural-HSS is built on
:class:`neuralhss.hss.HSSOperator`.
"""

from . import fno, neural_h2, neural_hss  # noqa: F401  (register "fno", "tfno", "neural_hss", "neural_h2")
from .registry import (
                       build,
                       count_parameters,
                       default_config,
                       from_spec,
                       model_names,
                       register,
                       tensor_state_dict,
)

__all__ = ["build", "count_parameters", "default_config", "from_spec", "model_names", "register",
           "tensor_state_dict"]
