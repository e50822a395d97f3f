"""Ship the Mermaid renderer with the site, so diagrams render with no network.

mkdocs-material draws ``mermaid`` fences in the browser and, unless a global
``mermaid`` is already defined, fetches the library from a CDN when a page is
viewed: offline, every diagram stays raw ``sequenceDiagram`` text. This hook
adds the library to the site as ``assets/javascripts/mermaid.min.js`` and
loads it on the pages that have a diagram (and only there: it is 3.5 MB), so
the theme finds it and fetches nothing.

Where it comes from: the PyPI package ``mermaidx`` (the ``docs`` extra) ships
Mermaid's own build, byte for byte the ``dist/mermaid.min.js`` of the
``mermaid`` npm package (MIT). We take the file, not the package's renderer,
and check its SHA-256 against the npm release, so a changed file fails the
build instead of reaching readers. Nothing is vendored into this repository
(3.5 MB of minified JavaScript), and no build step needs Node.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File
from mkdocs.utils import get_relative_url

#: Where the site serves it.
TARGET = "assets/javascripts/mermaid.min.js"
MERMAID_VERSION = "11.16.0"
#: sha256 of mermaid@11.16.0's dist/mermaid.min.js as published on npm
SHA256 = "74d7c46dabca328c2294733910a8aa1ed0c37451776e8d5295da38a2b758fb9b"


@lru_cache(maxsize=1)
def mermaid_js() -> Path:
    spec = importlib.util.find_spec("mermaidx")  # located, not imported: its renderer is not needed
    if spec is None or not spec.submodule_search_locations:
        raise PluginError("the docs need the mermaid renderer from the 'mermaidx' package: pip install -e '.[docs]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "mermaid.js"
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise PluginError(f"cannot read the mermaid renderer at {path}: {exc}") from None
    if digest != SHA256:
        raise PluginError(f"{path} is not mermaid {MERMAID_VERSION}'s dist/mermaid.min.js (sha256 {digest}); "
                          "pin the mermaidx version in pyproject.toml, or update MERMAID_VERSION and SHA256 in "
                          "docs/hooks/mermaid_offline.py after checking the file against the npm release")
    return path


def on_files(files, config):
    files.append(File.generated(config, TARGET, abs_src_path=str(mermaid_js())))
    return files


def on_post_page(output: str, page, config) -> str:
    """Load the renderer where a diagram is: before the theme's own code looks for it (at DOMContentLoaded)."""
    if 'class="mermaid"' not in output:
        return output
    script = f'<script src="{get_relative_url(TARGET, page.url)}"></script>'
    head, sep, tail = output.rpartition("</body>")
    return head + script + sep + tail if sep else output + script
