"""Copy the few MathJax files the book needs into book/_static/mathjax.

Usage:
    python tools/vendor_mathjax.py   # needs npm and the npm registry

The book serves MathJax from its own site, so a reader who builds it and reads
it offline sees typeset formulas, not LaTeX source. The files are committed;
this script documents where they come from and reproduces them: it fetches
the pinned ``mathjax`` package with ``npm pack``, checks the tarball against
the registry's published sha512, and keeps only

- ``tex-chtml-full.js``: TeX input with every TeX extension built in (so
  nothing is loaded on demand from elsewhere) and HTML output;
- ``output/chtml/fonts/woff-v2/*.woff``: the fonts that output uses, at the
  path MathJax looks for them next to the script;
- ``LICENSE``: MathJax's Apache-2.0 license.

Sphinx's ``mathjax_path`` in ``_config.yml`` points at the script.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESTINATION = ROOT / "book" / "_static" / "mathjax"
VERSION = "3.2.2"
# `npm view mathjax@3.2.2 dist.integrity`
INTEGRITY = (
    "sha512-"
    "Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)
SCRIPT = "es5/tex-chtml-full.js"
FONTS = "es5/output/chtml/fonts/woff-v2/"


def fetch(directory: Path) -> Path:
    """Downloads the pinned tarball with npm and verifies it; returns its path.

    Raises:
        RuntimeError: if the tarball's sha512 differs from ``INTEGRITY``.
    """
    subprocess.run(
        ["npm", "pack", f"mathjax@{VERSION}", "--pack-destination", str(directory)],
        check=True,
        capture_output=True,
    )
    tarball = directory / f"mathjax-{VERSION}.tgz"
    digest = hashlib.sha512(tarball.read_bytes()).digest()
    integrity = "sha512-" + base64.b64encode(digest).decode()
    if integrity != INTEGRITY:
        raise RuntimeError(f"mathjax-{VERSION}.tgz has integrity {integrity}, want {INTEGRITY}")
    return tarball


def wanted(member: str) -> str | None:
    """Maps a tarball member to its path under DESTINATION, or None to skip it."""
    name = member.removeprefix("package/")
    if name == "LICENSE":
        return name
    if name == SCRIPT or (name.startswith(FONTS) and name.endswith(".woff")):
        return name.removeprefix("es5/")
    return None


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        tarball = fetch(Path(scratch))
        if DESTINATION.exists():
            shutil.rmtree(DESTINATION)
        with tarfile.open(tarball) as archive:
            for member in archive.getmembers():
                target = wanted(member.name)
                if target is None or not member.isfile():
                    continue
                path = DESTINATION / target
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(archive.extractfile(member).read())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
