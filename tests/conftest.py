import os
import sys

# Tests import the project's top-level packages (models, data, losses) and the built
# extension `_egoexo_C` from the repository root.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

torch.set_num_threads(2)
