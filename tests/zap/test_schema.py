from pathlib import Path

from zapstack.zap.schema import BLOCK_SCHEMAS, TX_SCHEMAS, FieldType, Schema
from zapstack.zap.sigschemes import SigScheme

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats" / "zap.md"


def doc_row(schema: Schema) -> str:
    parts = []
    for f in schema.fields:
        extra = f"[{f.max_size}]" if f.type in (FieldType.BYTES, FieldType.PAYLOAD) else ""
        parts.append(f"{f.name}:{f.type.value}{extra}")
    return f"| 0x{schema.kind:02X} | {schema.kind.name} | {', '.join(parts)} | {schema.max_size} |"


def test_doc_schema_table_equals_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("<!-- schema-table:begin -->")[1].split("<!-- schema-table:end -->")[0]
    rows = [line for line in table.strip().splitlines()[2:]]
    expected = [doc_row(s) for s in (*TX_SCHEMAS.values(), *BLOCK_SCHEMAS.values())]
    assert rows == expected


def test_min_size_matches_the_documented_example() -> None:
    transfer = TX_SCHEMAS[0x01]
    assert transfer.min_size(SigScheme.ED25519) == 193
    assert transfer.table_end == 41
    assert transfer.index["fee"] == 3
