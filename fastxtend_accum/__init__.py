__version__ = "0.1.0"

from . import window, items, accumulation
from .window import *
from .items import *
from .accumulation import *
from .schedule import GradientAccumulationSchedule
from .loggers import fix_wandb_config
from .checker import check_accumulation, AccumulationReport
from .batchnorm import BatchNormWindowStats
from .noise_scale import GradientNoiseScale, AdaptiveGradientAccumulation
# Importing the package changes nothing in fastai; what the callbacks change, and when, is on the home page.
# `fastxtend_accum.distributed` (the processes, `launch_local`) and `fastxtend_accum.test_utils` are imported by name.

__all__ = [*window.__all__, *items.__all__, *accumulation.__all__, 'GradientAccumulationSchedule', 'fix_wandb_config',
           'check_accumulation', 'AccumulationReport', 'BatchNormWindowStats', 'GradientNoiseScale', 'AdaptiveGradientAccumulation']
