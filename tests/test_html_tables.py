"""The report's HTML views of the Markdown tables: a pipe table becomes an HTML table, verdicts coloured."""

from replication.report.html_tables import convert, markdown_to_html

MARKDOWN = """# Claims of the paper: verdicts of profile `evidence`

Verdicts: reproduced 1, inconclusive 1.

| claim | verdict | effect [95% CI] |   seeds |
|:------|:--------|:----------------|--------:|
| RMNet is faster than ResNet 34 (Table 1) | reproduced | 1.427 [1.375, 1.472] | |
| a <b>raw</b> tag \\| a pipe | inconclusive | 2.19 [-0.08, 4.46] | 3 |
"""


def test_pipe_tables_become_html_tables_with_alignment_and_verdict_classes():
    page = markdown_to_html(MARKDOWN)
    assert page.startswith("<!DOCTYPE html>") and "<title>Claims of the paper" in page
    assert "<h1>Claims of the paper: verdicts of profile <code>evidence</code></h1>" in page
    assert page.count("<tr>") == 3 and "<th class=\"right\">seeds</th>" in page
    assert '<td class="verdict-reproduced">reproduced</td>' in page
    assert "&lt;b&gt;raw&lt;/b&gt; tag | a pipe" in page  # escaped, and an escaped pipe stays in its cell
    assert "|" not in page.split("<tbody>")[1].replace("tag | a pipe", "")


def test_convert_writes_the_page_beside(tmp_path):
    source = tmp_path / "claims.md"
    source.write_text(MARKDOWN)
    target = convert(source, tmp_path / "out" / "claims.html")
    assert target.read_text().count("<table>") == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["claims.html"]
