"""neuralgpu: the Neural GPU (Kaiser & Sutskever, 2015) in modern PyTorch.

>>> import neuralgpu
>>> solver = neuralgpu.load("reverse")       # a shipped model, a release file or a run directory
>>> solver.solve(["3102"])
['2013']
"""

__version__ = "0.1.0"

from neuralgpu.curriculum import Curriculum, CurriculumConfig
from neuralgpu.evaluate import EvalResult, evaluate
from neuralgpu.model import ModelConfig, ModelOutput, NeuralGPU
from neuralgpu.recipes import RECIPES, build_config
from neuralgpu.solver import Answer, Solver, load
from neuralgpu.tasks import REGISTRY, Batch, Task, TaskInputError, get_task, task_names
from neuralgpu.train import Trainer, TrainResult
from neuralgpu.train_config import TrainConfig

__all__ = [
    "RECIPES",
    "REGISTRY",
    "Answer",
    "Batch",
    "Curriculum",
    "CurriculumConfig",
    "EvalResult",
    "ModelConfig",
    "ModelOutput",
    "NeuralGPU",
    "Solver",
    "Task",
    "TaskInputError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "__version__",
    "build_config",
    "evaluate",
    "get_task",
    "load",
    "task_names",
]
