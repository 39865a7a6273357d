"""``python -m server.protocol --schema``: print the JSON Schema kept in docs/protocol.schema.json."""

from __future__ import annotations

import sys

from server.protocol.codec import schema_text


def main(argv: list[str]) -> int:
    if argv == ["--schema"]:
        sys.stdout.write(schema_text())
        return 0
    print("usage: python -m server.protocol --schema", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover - exercised by the schema test through subprocess
    sys.exit(main(sys.argv[1:]))
