"""Built-in corpora, shipped by PyPI packages so nothing is downloaded at run time.

`builtin_names`: the US census (1990) first-name lists of the `names` package, male and
female, lowercased and de-duplicated in file order.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .errors import MakemoreError


@lru_cache(maxsize=1)
def _names_dir() -> Path:
    try:
        import names  # type: ignore[import-untyped]
    except ImportError:
        raise MakemoreError(
            "the built-in corpus needs the package 'names' (pip install names), or give an input file"
        ) from None
    return Path(names.__file__).parent


def builtin_names() -> list[str]:
    """About 5,000 distinct lowercase US first names."""
    seen: dict[str, None] = {}
    for fname in ("dist.male.first", "dist.female.first"):
        for line in (_names_dir() / fname).read_text(encoding="ascii").splitlines():
            if line.strip():
                seen.setdefault(line.split()[0].lower(), None)
    return list(seen)
