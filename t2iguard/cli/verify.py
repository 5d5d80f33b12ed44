"""`t2iguard verify IMAGE...`: does an image carry the service's watermark? (`t2iguard.runtime.verify`)

Registered in `t2iguard.cli.app` as `app.command()(verify)`; numpy, Pillow and the decoder are imported inside
the command so that `t2iguard --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from t2iguard.contract.errors import BAD_INPUT, NOT_MARKED, OK, InvalidInput


def verify(
    images: Annotated[list[Path], typer.Argument(help="Image files: PNG, JPEG, WebP, anything Pillow reads.",
                                                 show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (the test's threshold, then one "
                                                         "entry per image) instead of lines.")] = False,
) -> None:
    """Read the 48-bit invisible watermark (invisible-watermark's dwtDctSvd) that the service puts in every image
    it returns, and say whether each image carries it.

    One line per image: the path, marked or not marked, the message bits read back (k/48), the bit accuracy and
    the p-value: the chance that an image without the mark matches k or more bits (binomial, 48 fair coins).
    Marked: at least 41 of 48 bits match (p <= 1e-6). Images under 256x256 pixels are unreadable (never
    upscaled). The mark survives lossless copies and JPEG at quality 90; resizing, cropping and screenshots
    with a window around the image lose it, brightness changes often do (README, "Verifying a watermark").

    Exit codes: 0 every image is marked, 5 one is not marked, 2 one cannot be read (not an image, truncated,
    too small; 2 wins over 5).
    """
    import numpy as np
    from PIL import Image

    from t2iguard.runtime import verify as V

    results: list[dict] = []
    for path in images:
        try:
            with Image.open(path) as img:
                img.load()  # decodes the pixels: a truncated file fails here
                rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
            found = V.verify(rgb)
        except (OSError, Image.DecompressionBombError, InvalidInput) as e:
            results.append({"path": str(path), "error": str(e)})
            if not as_json:
                typer.echo(f"{path}: unreadable: {e}")
            continue
        results.append({"path": str(path)} | found.as_json())
        if not as_json:
            typer.echo(f"{path}: {'marked' if found.marked else 'not marked'}, {found.matched}/{found.bits} bits "
                       f"({found.accuracy:.1%}), p = {found.p_value:.2g}")
    if as_json:
        typer.echo(json.dumps({"bits": len(V.WATERMARK_BITS), "threshold": V.THRESHOLD,
                               "false_positive_rate": V.FALSE_POSITIVE_RATE, "images": results}, indent=2))
    if any("error" in r for r in results):
        raise typer.Exit(BAD_INPUT.exit_code)
    raise typer.Exit(OK.exit_code if all(r["marked"] for r in results) else NOT_MARKED.exit_code)
