__version__ = "0.1.0"

from .accumulation import *
from .loggers import fix_wandb_config
