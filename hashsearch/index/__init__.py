"""Index types: structures over packed codes behind one FAISS-like protocol.

:class:`BinaryIndex` is the exact flat scan over a kernel backend. This
package may import the base modules, ``backends``, ``functional`` and
``store`` (indexes are saved as code stores), never ``search``'s drivers,
``data``, ``eval`` or ``cli``.
"""

from __future__ import annotations

from hashsearch.index.flat import BinaryIndex

__all__ = ["BinaryIndex"]
