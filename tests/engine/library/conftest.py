"""A small real library built on the fly: several formats, UCS names, metadata, hostile files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.library.scan import add_folder
from engine.library.store import LibraryIndex
from tests.engine.library import builders as b

# (relative path, what it is). Onsets differ per file so alignment tests can tell them apart.
ONSETS_S = {
    "Doors/DOORWood_Slam Heavy_ABC_Foley.wav": 0.21,
    "Doors/DOORWood_Slam Light_ABC_Foley.flac": 0.13,
    "Doors/DOORWood_Slam Big_XYZ_Studio.aiff": 0.37,
    "Doors/DOORMetl_Clang Gate_ABC_Foley.ogg": 0.05,
    "Guns/GUNPis_Pistol Shot_ABC_Field.mp3": 0.1,
}


@pytest.fixture()
def library_dir(tmp_path: Path) -> Path:
    root = tmp_path / "SFX"
    for seed, (name, onset_s) in enumerate(ONSETS_S.items()):
        b.write(root / name, b.hit(onset_s=onset_s, length_s=1.2, seed=seed))
    b.bwf(root / "Ambience/AMBForst_Birds Morning_ABC_Field.wav", b.bed(length_s=4.0, seed=7),
          description="dawn chorus in a beech forest, distant woodpecker", originator="Field Kit",
          ixml="<BWFXML><NOTE>recorded at sunrise</NOTE><USER>LIBRARY=Nature Vol 1</USER>"
               "<ASWG><library>Nature Vol 1</library><copyright>CC-BY 4.0</copyright></ASWG></BWFXML>")
    b.write(root / "Ambience/RAINConc_Rain On Pavement_ABC_Field.flac", b.bed(length_s=5.0, seed=8))
    b.vorbis_tags(root / "Ambience/RAINConc_Rain On Pavement_ABC_Field.flac",
                  description="steady light rain on a city pavement", copyright="Licence: ABC EULA")
    b.write(root / "Own/kettle whistle take 3.mp3", b.hit(onset_s=0.4, length_s=2.0, seed=9))
    b.id3_tags(root / "Own/kettle whistle take 3.mp3", title="Kettle whistle", comment="steam kettle boiling over",
               artist="Jo Designer", album="Kitchen Sessions", copyright="(c) Jo Designer")
    # Hostile and broken files: each must be skipped with a reason, never stop the scan.
    (root / "Broken").mkdir()
    (root / "Broken/empty.wav").write_bytes(b"")
    b.truncated(root / "Broken/truncated.wav", root / "Doors/DOORWood_Slam Heavy_ABC_Foley.wav")
    (root / "Broken/notes.mp3").write_text("this is not audio\n")
    b.huge_data_claim(root / "Broken/huge_claim.wav")
    os.symlink(root / "Broken", root / "Broken/loop")  # a folder link back into itself
    os.symlink("self.wav", root / "Broken/self.wav")  # a file link to itself
    return root


@pytest.fixture()
def index(tmp_path: Path) -> LibraryIndex:
    with LibraryIndex(tmp_path / "data" / "library.sqlite") as opened:
        yield opened


@pytest.fixture()
def built(index: LibraryIndex, library_dir: Path) -> LibraryIndex:
    add_folder(index, library_dir)
    return index
