"""Copies each example file into the guides where they embed it.

A guide embeds an example as a marker line `<!-- embed: examples/PATH -->`
followed by a fenced block; this rewrites every such block with the file's
current text. The integration test `guides::the_guides_embed_the_example_files_verbatim`
fails until the copies match. Usage: python3 docs/examples/sync-guides.py
"""
import pathlib
import re

DOCS = pathlib.Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- embed: (examples/[^ ]+) -->\n```[^\n]*\n)(.*?)(^```$)", re.S | re.M)

for guide in sorted(DOCS.glob("*.md")):
    text = guide.read_text()
    synced = BLOCK.sub(lambda m: m.group(1) + (DOCS / m.group(2)).read_text() + m.group(4), text)
    if synced != text:
        guide.write_text(synced)
        print(f"updated {guide.name}")
