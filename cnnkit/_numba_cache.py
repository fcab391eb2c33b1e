"""Numba's on-disk cache, made safe for processes that compile at the same time.

Numba files each compiled specialisation of a function under the index's first free number
(``<function>-<line>.py311.<n>.nbc``). Two processes that compile different specialisations
of one function on a cold cache (pytest's workers, MPI ranks, ``cnnkit tune``'s helpers) can
both read the index before either writes it, take the same number, and write their files
over each other: the index then names, for one signature, the file of another. A later
process loads that code under the wrong signature, and the call it needed fails to type
("Known signatures: ..."), as a depthwise weight kernel specialised by constant arguments
did once in a test run on a fresh cache. Here each new file is named by a digest of its own
key instead of a counter, so that different keys never share a file; two processes writing
the same key write the same code. An index entry lost to the race only means compiling
again. (Files of an edited kernel's old code are no longer overwritten by number: they stay
until the package's ``__pycache__`` is removed.)
"""
import hashlib


def name_files_by_key():
    """Patch ``numba.core.caching.IndexDataCacheFile.save`` (the one place that names a cache
    file); a Numba without it is left as it is."""
    try:
        from numba.core import caching
    except ImportError:
        return
    cache_file = getattr(caching, "IndexDataCacheFile", None)
    if cache_file is None or getattr(cache_file.save, "names_by_key", False) or not all(
            hasattr(cache_file, name) for name in ("_load_index", "_save_index",
                                                   "_save_data", "_data_name")):
        return

    def save(self, key, data):
        overloads = self._load_index()
        data_name = overloads.get(key)
        if data_name is None:
            data_name = self._data_name(key_number(key))
            overloads[key] = data_name
            self._save_index(overloads)
        self._save_data(data_name, data)
    save.names_by_key = True
    cache_file.save = save


def key_number(key):
    """A 60-bit number naming a cache key (a signature, the target, the code's hashes), in
    the place of Numba's counter: a digest of the key's text. (Were two processes to print
    one key differently, each would only write a file of its own.)"""
    return int(hashlib.sha256(repr(key).encode()).hexdigest()[:15], 16)
