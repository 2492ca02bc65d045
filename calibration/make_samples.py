"""Write calibration/samples/: public-domain / CC0 photographs bundled with scikit-image, as JPEG.

Deterministic: the pixels come from the installed scikit-image package (no download), are saved at their
native size with Pillow at quality 90 (no EXIF, no optimisation pass), and LICENSE.md is regenerated from
the table below, so running it twice gives identical files for a given Pillow / libjpeg build.

    python calibration/make_samples.py            # needs scikit-image (a dev dependency)

Only photographs whose licence scikit-image's docstrings state as public domain or CC0 are used. The two
greyscale photographs are kept greyscale (single-channel JPEG, like the greyscale JPEGs inside ImageNet);
the loader converts every image to RGB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent / "samples"
QUALITY = 90

# skimage.data function (also the file stem), author / origin, licence (quoted from the function's docstring)
SAMPLES: tuple[tuple[str, str, str], ...] = (
    (
        "astronaut",
        "NASA Great Images database (https://flic.kr/p/r9qvLn), astronaut Eileen Collins",
        "No known copyright restrictions, released into the public domain.",
    ),
    (
        "camera",
        "Lav Varshney (photographer)",
        "No copyright restrictions. CC0 by the photographer (Lav Varshney).",
    ),
    (
        "chelsea",
        "Stefan van der Walt (photographer), Chelsea the cat",
        "No copyright restrictions.  CC0 by the photographer (Stefan van der Walt).",
    ),
    (
        "clock",
        "Stefan van der Walt (photographer), motion-blurred wall clock",
        "Released into the public domain by the photographer (Stefan van der Walt).",
    ),
    (
        "coffee",
        "Rachel Michetti (photographer), courtesy of Pikolo Espresso Bar",
        "No copyright restrictions.  CC0 by the photographer (Rachel Michetti).",
    ),
    (
        "hubble_deep_field",
        "NASA, Hubble eXtreme Deep Field (http://hubblesite.org/newscenter/archive/releases/2012/37/image/a/)",
        "The image was captured by NASA and may be freely used in the public domain.",
    ),
    (
        "retina",
        "Mikael Häggström, fundus photograph "
        "(https://commons.wikimedia.org/wiki/File:Fundus_photograph_of_normal_left_eye.jpg)",
        "This file is made available under the Creative Commons CC0 1.0 Universal Public Domain Dedication.",
    ),
    (
        "rocket",
        "SpaceX Photos (https://www.flickr.com/photos/spacexphotos/16511594820/), DSCOVR launch on Falcon 9",
        "The image was captured by SpaceX and released in the public domain.",
    ),
)


def _save(function: str) -> tuple[str, tuple[int, ...]]:
    """Save one skimage.data image as JPEG; returns the file name and the array shape."""
    import skimage.data

    pixels = np.asarray(getattr(skimage.data, function)())
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise SystemExit(f"skimage.data.{function}() is not a uint8 image: {pixels.dtype} {pixels.shape}")
    name = f"{function}.jpg"
    Image.fromarray(pixels).save(OUT / name, "JPEG", quality=QUALITY)
    return name, pixels.shape


def _license(rows: list[tuple[str, str, tuple[int, ...], str, str]], version: str) -> str:
    lines = [
        "# Calibration samples: sources and licences",
        "",
        f"Every file is a photograph bundled with scikit-image {version} (`skimage.data`), re-encoded by",
        "`calibration/make_samples.py` as JPEG (quality 90) at its native size. Licences are quoted from the",
        "docstring of each `skimage.data` function (reStructuredText link markup removed).",
        "",
        "| file | source | size (H x W) | author / origin | licence (as scikit-image states it) |",
        "|---|---|---|---|---|",
    ]
    for name, function, shape, origin, licence in rows:
        size = f"{shape[0]} x {shape[1]}" + ("" if len(shape) == 3 else ", greyscale")
        lines.append(f"| `{name}` | `skimage.data.{function}()` | {size} | {origin} | {licence} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    import skimage

    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for function, origin, licence in SAMPLES:
        name, shape = _save(function)
        rows.append((name, function, shape, origin, licence))
        print(f"{name}: {shape}")
    (OUT / "LICENSE.md").write_text(_license(rows, skimage.__version__), encoding="utf-8")


if __name__ == "__main__":
    main()
