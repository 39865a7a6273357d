"""The designer's own sound library: an index of their files and a backend that renders from it.

* ``ucs``, ``metadata``: what a file says about itself (UCS name, bext, iXML, ID3/Vorbis tags);
* ``analysis``: loudness, main transient, loop cleanliness;
* ``store``: the SQLite + FTS5 index; ``scan``: incremental indexing of folders;
* ``search``: event descriptions -> ranked files, through the sound lexicon and BM25;
* ``fit``: one file -> one event's audio; ``backend``: the ``library`` and ``hybrid`` backends;
* ``semantic``: optional CLAP text/audio vectors.

Nothing here is imported by the offline default path; the backends load it by name.
"""
