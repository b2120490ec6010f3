"""fourdnex: one image in, a 4D scene out.

The library is the product; the ``4dnex`` command is a thin layer over it.
Heavy parts (models, renderer, exporters) are imported from their subpackages on use.
"""

from fourdnex.errors import FourDNeXError, SceneFormatError, ValidationError
from fourdnex.scene import Scene4D
from fourdnex.scene_meta import SceneMeta

__version__ = "0.1.0"

__all__ = [
    "FourDNeXError",
    "Scene4D",
    "SceneFormatError",
    "SceneMeta",
    "ValidationError",
    "__version__",
]
