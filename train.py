"""Train the VAE or the DiT: `python train.py --config configs/dit_small.yaml [key=value ...]`.

Same command under `accelerate launch` for many GPUs or nodes; see docs/training.md.
"""

import sys

from audiodit.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
