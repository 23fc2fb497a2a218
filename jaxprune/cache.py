"""JAX's persistent compilation cache, on by default for jaxprune (`configure`), so a sweep's
compilations survive the process. `import jaxprune` configures it when JAX is already imported,
else on first use of a public name; `jaxprune.training`, which every compiled path imports,
configures it too, so a compilation never precedes it. `configure` is idempotent.

Where: $JAX_COMPILATION_CACHE_DIR when set (JAX's own variable; empty turns the cache off), else
a directory the user set with `jax.config.update("jax_compilation_cache_dir", ...)` before
importing jaxprune, else $XDG_CACHE_HOME/jaxprune/jax (~/.cache/jaxprune/jax). JAXPRUNE_NO_CACHE=1
leaves JAX's settings untouched (JAX's default: no persistent cache). Every compilation is
written (JAX's default writes only those over 1 s, which leaves out a small sweep's chunk
functions), unless the user set the thresholds themselves (their JAX_PERSISTENT_CACHE_*
variables or values other than JAX's defaults are kept).
"""

from __future__ import annotations

import os
from pathlib import Path

NO_CACHE_VARIABLE = "JAXPRUNE_NO_CACHE"
DIRECTORY_VARIABLE = "JAX_COMPILATION_CACHE_DIR"
# JAX option: (its environment variable, JAX's default, jaxprune's value: cache everything)
THRESHOLDS = {
    "jax_persistent_cache_min_compile_time_secs": (
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
        1.0,
        0.0,
    ),
    "jax_persistent_cache_min_entry_size_bytes": (
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES",
        0,
        -1,  # no size restriction, and JAX does not override it
    ),
}


def default_directory(environ=os.environ) -> Path:
    """$XDG_CACHE_HOME/jaxprune/jax, with ~/.cache for an unset or empty XDG_CACHE_HOME."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jaxprune" / "jax"


def configure(environ=os.environ) -> str | None:
    """Turn the persistent compilation cache on as the module docstring says; returns its
    directory, or None where it is off (JAXPRUNE_NO_CACHE=1, or JAX_COMPILATION_CACHE_DIR set
    empty)."""
    import jax  # here, not at import: `jaxprune --help` imports this module without JAX

    if environ.get(NO_CACHE_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on"):
        return None
    if DIRECTORY_VARIABLE in environ:  # JAX reads it itself; empty means off
        directory = environ[DIRECTORY_VARIABLE] or None
    else:
        directory = jax.config.jax_compilation_cache_dir or str(default_directory(environ))
        jax.config.update("jax_compilation_cache_dir", directory)
    if directory is None:
        return None
    for option, (variable, jax_default, value) in THRESHOLDS.items():
        if variable not in environ and getattr(jax.config, option) == jax_default:
            jax.config.update(option, value)
    return directory
