#!/bin/sh
# Train spherevae on your own data from the command line: a .npz file of arrays and a folder of
# PNG images, one subfolder per class. Step 1 writes small stand-ins for your files; replace them
# with yours (the layouts are in README.md, "Your data and your networks").
#
# usage: examples/train_on_your_data.sh [WORK_DIR [EXTRA TRAIN FLAGS...]]
#   e.g. examples/train_on_your_data.sh demo --epochs 5
# Environment: PYTHON (default python3) runs step 1; SPHEREVAE (default spherevae) is the command;
# N (default 100) images per class in step 1.
set -eu

WORK=${1:-your-data-demo}
[ $# -gt 0 ] && shift
PYTHON=${PYTHON:-python3}
SPHEREVAE=${SPHEREVAE:-spherevae}
N=${N:-100}
mkdir -p "$WORK"

# 1. the data: digits.npz (8x8 grey digits from scikit-learn, x (N, 1, 8, 8) in [0, 1] and labels
#    y) and shapes/ (16x16 colour PNGs: shapes/circle/*.png, shapes/square/*.png, ...)
"$PYTHON" - "$WORK" "$N" <<'EOF'
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from sklearn.datasets import load_digits

work, n = Path(sys.argv[1]), int(sys.argv[2])
digits = load_digits()
keep = slice(0, 10 * n)
np.savez(
    work / "digits.npz",
    x=(digits.images[keep] / 16).astype(np.float32)[:, None],
    y=digits.target[keep],
)
rng = np.random.default_rng(0)
colours = {"circle": (220, 40, 40), "square": (40, 90, 220), "triangle": (30, 160, 60)}
for shape, colour in colours.items():
    folder = work / "shapes" / shape
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = Image.new("RGB", (16, 16), "white")
        x, y = rng.integers(1, 7, 2)
        s = int(rng.integers(7, 10))
        draw = ImageDraw.Draw(image)
        if shape == "circle":
            draw.ellipse((x, y, x + s, y + s), fill=colour)
        elif shape == "square":
            draw.rectangle((x, y, x + s, y + s), fill=colour)
        else:
            draw.polygon([(x, y + s), (x + s, y + s), (x + s // 2, y)], fill=colour)
        image.save(folder / f"{i:03d}.png")
print(f"wrote {work / 'digits.npz'} and {work / 'shapes'}")
EOF

# 2. a .npz file: train, evaluate (run.json records the file's SHA-256; eval re-checks it)
$SPHEREVAE train --dataset "npz:$WORK/digits.npz" --latent S2 --epochs 20 \
    --out "$WORK/runs/digits" "$@"
$SPHEREVAE eval "$WORK/runs/digits" --ll-samples 20

# 3. a folder of images (add --image-size H W when their sizes differ): train, then the figures
$SPHEREVAE train --dataset "folder:$WORK/shapes" --latent S2 --epochs 20 \
    --out "$WORK/runs/shapes" "$@"
$SPHEREVAE plot "$WORK/runs/shapes" reconstructions decoded_grid latent_maps
echo "trained on your data: figures in $WORK/runs/digits/plots and $WORK/runs/shapes/plots"
