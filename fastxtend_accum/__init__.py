__version__ = "0.1.0"

from .accumulation import *
from .schedule import GradientAccumulationSchedule
from .loggers import fix_wandb_config
from .checker import check_accumulation, AccumulationReport
from .batchnorm import BatchNormWindowStats
from .noise_scale import GradientNoiseScale, AdaptiveGradientAccumulation
# `fastxtend_accum.distributed` is opt-in: it imports Accelerate and patches fastai's `DistributedDL`
