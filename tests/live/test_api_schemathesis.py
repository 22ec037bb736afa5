"""`comptoir api --write` against its own OpenAPI document, by Schemathesis (its command line, as
a user runs it): requests generated from the document — examples, the boundaries of every
parameter, random ones, sequences of writes and reads — sent to a real server, each answer
checked: no 500, only documented status codes and content types, bodies matching their schemas,
valid requests accepted and invalid ones refused.

What it found when it was first run: `_expand=<not a column>` and a time with a zone compared
with a column's times were 500s; `_sort=`, `_fields=` and integers past a column's range were
accepted by the document and refused by the server; a missing row with `If-Match` was a 412
where RFC 9110 §13.2.1 has a 404; `42.0` (an integer for JSON Schema) was refused as an integer;
a row posted after the largest key there is was refused; the answer with `_facet` and the times
did not match their schemas.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from tests.conftest import live_server
from tests.live.openapi_check import check_against_document

# Every column type, nulls, a table keyed by text beside the course's two.
PEOPLE = (
    "id,name,score,ratio,active,born,seen\n"
    "1,Ada,90,10.5,true,1990-01-02,2024-05-01T10:30:00\n"
    "2,Bob,-75,,false,1985-06-30,\n"
    "3,Chloé,,0.25,,,2024-05-03T00:00:00.250000\n"
)
CODES = "code,label\nFR,France\nBE,Belgique\n"

# Besides a success, a valid request may meet a row that is not there (404), a key an earlier
# request took (409), a tag that is not the row's (412). A list's parameters are valid one by
# one but not in every combination (`_after` pages in key order only: 400), which a document
# cannot say: its valid requests are not required to be accepted — they are still checked for
# errors, statuses, content types and schemas.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "404", "409", "412"]
[checks.negative_data_rejection]
expected-statuses = ["400", "404", "405", "409", "412", "413", "415", "422"]

[[operations]]
include-method = "GET"
include-path-regex = "^/api/[^/]+$"
checks.positive_data_acceptance.enabled = false
"""


def test_the_api_answers_as_its_openapi_document_says(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    sample = resources.files("comptoir.sites.api") / "sample"
    for name in ("associations_etudiantes.csv", "evenements_associations.csv"):
        shutil.copyfile(str(sample / name), folder / name)
    (folder / "people.csv").write_text(PEOPLE, encoding="utf-8")
    (folder / "codes.csv").write_text(CODES, encoding="utf-8")
    with live_server("api", str(folder), "--write", "--id", "codes.code", timeout=60) as srv:
        check_against_document(srv, tmp_path, CONFIG, max_examples=15)
