"""KFP components: one folder per stage, each a thin adapter over the mlops library.

Every component runs in the project's component image. Its reference is
fixed when the pipelines are compiled: ``MLOPS_COMPONENT_IMAGE`` (``make
compile IMAGE=...``) or, by default, the image the Dockerfile builds for this
version.
"""

import os

from mlops import __version__

DEFAULT_IMAGE = f"mlops-suite/components:{__version__}"
COMPONENT_IMAGE = os.environ.get("MLOPS_COMPONENT_IMAGE") or DEFAULT_IMAGE
