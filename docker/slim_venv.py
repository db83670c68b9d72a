"""Slim the image's venv: compiled code only, the pure-Python packages in one compressed zip.

Run by the Dockerfile's build stage, never at run time, never in tests' venvs::

    /opt/venv/bin/python docker/slim_venv.py /opt/venv/lib/python3.11/site-packages

- A top-level package with no extension module (openai, anthropic, PyGithub, pydantic, ...)
  goes into ``site-packages/packed.zip`` as ``.pyc`` only; ``packed.pth`` puts the zip on
  ``sys.path`` (zipimport reads sourceless ``.pyc``). Deflate shrinks the bytecode about 2.5x.
- A package with an extension module (temporalio, cryptography, pydantic_core, ...), or a
  namespace package (opentelemetry: zipimport cannot find those), stays on disk as sourceless
  ``.pyc`` beside where its ``.py`` was.
- ``runner`` keeps its sources (tracebacks in our own code show their lines); so do the
  packages in ``KEEP_SOURCES``, which read their own files at run time.
- Type stubs (``*.pyi``, ``*-stubs``) and pip's ``RECORD`` files (no installer runs here) go.

Start-up stays as fast as with ``.pyc`` files beside the sources: nothing is compiled at
import time, and uid 1000 could not write a ``.pyc`` into /opt/venv anyway.
"""

from __future__ import annotations

import compileall
import importlib.util
import marshal
import os
import shutil
import sys
import zipfile
from pathlib import Path

#: Never packed, never made sourceless: our own code, and packages that read their own files.
KEEP_SOURCES = {"runner", "detect_secrets", "certifi", "cffi", "pycparser", "_distutils_hack"}
ZIP_NAME = "packed.zip"
#: PEP 552 header of a timestamp .pyc with no source to compare against (flags, mtime, size: 0).
PYC_HEADER = importlib.util.MAGIC_NUMBER + bytes(12)


def has_extension(path: Path) -> bool:
    return any(p.suffix == ".so" or ".so." in p.name for p in path.rglob("*") if p.is_file())


def pack(site: Path) -> None:
    zip_path = site / ZIP_NAME
    packed: list[str] = []
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for entry in sorted(site.iterdir()):
            name = entry.name
            if name.endswith("-stubs") and entry.is_dir():
                shutil.rmtree(entry)
                continue
            if name.endswith((".dist-info", ".libs", ".pth", ".zip")) or name == "__pycache__":
                continue
            top = name.removesuffix(".py")
            if top in KEEP_SOURCES:
                continue
            # zipimport finds no namespace package (a directory without __init__.py: opentelemetry)
            if entry.is_dir() and (has_extension(entry) or not (entry / "__init__.py").exists()):
                sourceless(entry)
                continue
            if entry.is_file() and entry.suffix != ".py":
                continue
            files = [entry] if entry.is_file() else sorted(p for p in entry.rglob("*") if p.is_file())
            # A subdirectory without __init__.py (anthropic/_decoders) is an implicit namespace
            # package, which zipimport cannot find: in the zip it gets an empty __init__.
            for folder in {f.parent for f in files if f.suffix == ".py"} - {site}:
                if not (folder / "__init__.py").exists():
                    empty = compile(b"", f"{folder.relative_to(site).as_posix()}/__init__.py", "exec")
                    archive.writestr(f"{folder.relative_to(site).as_posix()}/__init__.pyc",
                                     PYC_HEADER + marshal.dumps(empty))
            for file in files:
                rel = file.relative_to(site).as_posix()
                if "__pycache__" in file.parts or file.suffix in (".pyc", ".pyi") or file.name == "py.typed":
                    continue
                if file.suffix == ".py":
                    code = compile(file.read_bytes(), rel, "exec", dont_inherit=True, optimize=0)
                    archive.writestr(rel[:-3] + ".pyc", PYC_HEADER + marshal.dumps(code))
                else:
                    archive.write(file, rel)
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            packed.append(top)
    (site / "packed.pth").write_text(f"{zip_path}\n")
    for record in site.glob("*.dist-info/RECORD"):
        record.unlink()
    print(f"packed into {ZIP_NAME}: {', '.join(packed)}")


def sourceless(package: Path) -> None:
    """Compile beside the sources (legacy ``.pyc`` locations), then drop sources, caches and stubs."""
    if not compileall.compile_dir(str(package), quiet=2, legacy=True, ddir=None, workers=1):
        raise SystemExit(f"could not compile {package}")
    for path in sorted(package.rglob("*"), reverse=True):
        if path.is_dir() and path.name == "__pycache__":
            shutil.rmtree(path)
        elif path.is_file() and (path.suffix in (".py", ".pyi") or path.name == "py.typed"):
            path.unlink()


def main() -> None:
    site = Path(sys.argv[1])
    pack(site)
    os.sync()


if __name__ == "__main__":
    main()
